package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

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
	// Write next to the target and rename, so a failed backup never leaves
	// a truncated file under the final name.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return exitFailure, err
	}
	defer os.Remove(tmp.Name())
	if err := st.Backup(tmp); err != nil {
		tmp.Close()
		return exitFailure, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return exitFailure, err
	}
	if err := tmp.Close(); err != nil {
		return exitFailure, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return exitFailure, err
	}
	info, _ := os.Stat(path)
	enc := "plain"
	if st.Encrypted() {
		enc = "encrypted"
	}
	fmt.Printf("backed up %s to %s (%d bytes, %s)\n", st.Dir(), path, info.Size(), enc)
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
