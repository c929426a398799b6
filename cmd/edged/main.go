// Command edged is the edge face-recognition daemon and its tools.
//
// Subcommands live one per file (cmd_*.go) and register themselves in the
// command table; main only dispatches.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/edged-dev/edged/agent"
)

// Command is one subcommand: a record, like caddy's, so `edged help` can list
// them and each file can add its own.
type Command struct {
	Name  string
	Usage string // arguments, e.g. "[--json]"
	Short string // one line for `edged help`
	// Run executes the command with the arguments after its name. It returns
	// the process exit code; a non-nil error is printed as "edged NAME: err".
	Run func(ctx context.Context, args []string) (int, error)
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed (bad input, some files failed, ...)
	exitUsage   = 2 // wrong arguments
	exitStartup = 3 // could not start (missing model, bad config): restarting will not help
)

var commands = map[string]*Command{}

func register(c *Command) {
	if c.Name == "" || c.Run == nil {
		panic("edged: invalid command registration")
	}
	if _, dup := commands[c.Name]; dup {
		panic("edged: duplicate command " + c.Name)
	}
	commands[c.Name] = c
}

// errUsage marks an error in the command line; main prints the usage.
var errUsage = errors.New("usage")

// exitCodeOf maps a command's error to its exit status.
func exitCodeOf(err error) int {
	var se agent.StartupError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.As(err, &se):
		return exitStartup
	}
	return exitFailure
}

func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(os.Stdout)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "edged: unknown command %q (see `edged help`)\n", args[0])
		return exitUsage
	}
	// The first SIGINT/SIGTERM cancels ctx (graceful), a second one kills.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // restore default handling: a second signal ends the process
	}()
	code, err := cmd.Run(ctx, args[1:])
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "edged %s: %v\n", cmd.Name, err)
		if errors.Is(err, errUsage) {
			fmt.Fprintf(os.Stderr, "usage: edged %s %s\n", cmd.Name, cmd.Usage)
		}
	}
	return code
}

func printHelp(w *os.File) {
	fmt.Fprintln(w, "edged: few-shot face recognition on the edge device\n\nusage: edged COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Short)
	}
	fmt.Fprintln(w, "\nRun `edged COMMAND -h` for the flags of a command.")
}
