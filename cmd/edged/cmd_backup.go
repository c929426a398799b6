package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/edged-dev/edged/store"
)

func init() {
	register(&Command{
		Name:  "backup",
		Usage: "FILE [--data DIR] [--key-file FILE]   (the daemon must be stopped)",
		Short: "write a consistent backup of the store (encrypted when the store is)",
		Run:   runBackup,
	})
	register(&Command{
		Name:  "restore",
		Usage: "FILE [--data DIR] [--key-file FILE]   (DIR must not exist or be empty)",
		Short: "create the store from a backup (never merges into existing data)",
		Run:   runRestore,
	})
}

func runBackup(_ context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	sf := addStoreCLIFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != 1 {
		return exitUsage, usageError("give one backup FILE")
	}
	st, code, err := sf.open(true)
	if err != nil {
		return code, err
	}
	defer st.Close()
	path := pos[0]
	size, err := st.BackupFile(path)
	if err != nil {
		return exitFailure, err
	}
	enc := "plain"
	if st.Encrypted() {
		enc = "encrypted"
	}
	fmt.Printf("backed up %s to %s (%d bytes, %s)\n", st.Dir(), path, size, enc)
	return exitOK, nil
}

func runRestore(_ context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	sf := addStoreCLIFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != 1 {
		return exitUsage, usageError("give one backup FILE")
	}
	opts, err := sf.options(false)
	if err != nil {
		return exitStartup, err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return exitFailure, err
	}
	defer f.Close()
	if err := store.Restore(f, opts); err != nil {
		return exitFailure, err
	}
	fmt.Printf("restored %s into %s\n", pos[0], opts.Dir)
	return exitOK, nil
}
