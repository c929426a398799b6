package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/infer"
)

func init() {
	register(&Command{
		Name:  "model",
		Usage: "list|activate ID|rollback|import FILE [--data DIR] [--json]   (the daemon must be stopped)",
		Short: "list the fine-tuned head versions, activate one, roll back, import a trained head",
		Run:   runModel,
	})
}

// modelJSON is one head version in `edged model list --json`.
type modelJSON struct {
	ID      string             `json:"id"`
	Created time.Time          `json:"created"`
	Active  bool               `json:"active"`
	Layers  int                `json:"layers,omitempty"`
	Note    string             `json:"note,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Error   string             `json:"error,omitempty"` // the weights do not decode
}

func runModel(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 {
		return exitUsage, usageError("missing subcommand (list, activate, rollback, import)")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("model "+sub, flag.ContinueOnError)
	sf := addStoreCLIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var activate *bool
	var note *string
	want := 0
	switch sub {
	case "list", "rollback":
	case "activate":
		want = 1
	case "import":
		want = 1
		activate = fs.Bool("activate", false, "make the imported head the active one")
		note = fs.String("note", "", "note stored with the head")
	default:
		return exitUsage, usageError("unknown subcommand %q (list, activate, rollback, import)", sub)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != want {
		return exitUsage, usageError("model %s takes %d argument(s), got %d", sub, want, len(pos))
	}
	if sub == "activate" || sub == "rollback" {
		// Only import may create a database; these need one with heads.
		opts, err := sf.options(true)
		if err != nil {
			return exitStartup, err
		}
		if _, err := os.Stat(opts.Dir); err != nil {
			return exitFailure, fmt.Errorf("no database in %q (nothing enrolled or trained yet?)", opts.Dir)
		}
	}
	st, code, err := sf.open(sub == "list")
	if err != nil {
		return code, err
	}
	defer st.Close()
	heads := enroll.Heads{Store: st, Backbone: enroll.AnyBackbone} // edged model runs no network: any backbone's head
	switch sub {
	case "list":
		return modelList(heads, *asJSON)
	case "activate":
		info, err := heads.Activate(pos[0])
		if err != nil {
			return exitFailure, err
		}
		return printModelResult(modelOf(info), *asJSON, fmt.Sprintf("head %s is active (the daemon uses it from its next start)", info.ID))
	case "rollback":
		from, to, err := heads.Rollback()
		if err != nil {
			return exitFailure, err
		}
		if to.ID == "" {
			return printModelResult(modelJSON{}, *asJSON, fmt.Sprintf("rolled back from %s to the frozen network (no head active)", from.ID))
		}
		return printModelResult(modelOf(to), *asJSON, fmt.Sprintf("rolled back from %s to %s (the daemon uses it from its next start)", from.ID, to.ID))
	default:
		return modelImport(heads, pos[0], *activate, *note, *asJSON)
	}
}

func modelOf(h enroll.HeadInfo) modelJSON {
	m := modelJSON{ID: h.ID, Created: h.Created, Active: h.Active, Note: h.Note, Metrics: h.Metrics, Layers: h.Layers}
	if h.DecodeErr != nil {
		m.Error = h.DecodeErr.Error()
	}
	return m
}

func modelList(heads enroll.Heads, asJSON bool) (int, error) {
	hs, err := heads.List()
	if err != nil {
		return exitFailure, err
	}
	out := make([]modelJSON, len(hs))
	active := false
	for i, h := range hs {
		out[i] = modelOf(h)
		active = active || h.Active
	}
	if asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(out)
	}
	if len(out) == 0 {
		fmt.Println("no head versions: matching uses the frozen network (identity head)")
		return exitOK, nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTIVE\tID\tCREATED\tLAYERS\tDIR@FAR1% (before)\tUNSEEN AUC (before)\tNOTE")
	for _, m := range out {
		mark := ""
		if m.Active {
			mark = "*"
		}
		layers := fmt.Sprint(m.Layers)
		if m.Error != "" {
			layers = "corrupt"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", mark, m.ID, m.Created.Local().Format("2006-01-02 15:04:05"), layers,
			metricPair(m.Metrics, "dir_at_far_0.01"), metricPair(m.Metrics, "unseen_auc"), truncate(m.Note, 90))
	}
	tw.Flush()
	if !active {
		fmt.Println("no version is active: matching uses the frozen network (identity head)")
	}
	return exitOK, nil
}

func metricPair(m map[string]float64, key string) string {
	v, ok := m[key]
	if !ok {
		return "-"
	}
	if b, ok := m["before_"+key]; ok {
		return fmt.Sprintf("%.3f (%.3f)", v, b)
	}
	return fmt.Sprintf("%.3f", v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func printModelResult(m modelJSON, asJSON bool, msg string) (int, error) {
	if asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(m)
	}
	fmt.Println(msg)
	return exitOK, nil
}

// modelImport stores a head file written by `edged train --out`.
func modelImport(heads enroll.Heads, path string, activate bool, note string, asJSON bool) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return exitFailure, err
	}
	dims := map[string]int{}
	for _, id := range infer.BackboneIDs() {
		bb, _ := infer.Lookup(id)
		dims[id] = bb.Dim
	}
	info, err := heads.Import(path, b, dims, note, activate)
	if err != nil {
		return exitFailure, err
	}
	state := "inactive; `edged model activate " + info.ID + "` to use it"
	if activate {
		state = "active (the daemon uses it from its next start)"
	}
	return printModelResult(modelOf(info), asJSON, fmt.Sprintf("imported %s as head %s, %s", path, info.ID, state))
}
