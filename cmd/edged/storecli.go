package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/store"
)

// storeCLIFlags are the flags of every command that opens the store:
// --data DIR (default: the config's data_dir, else $STATE_DIRECTORY, else
// ./edged-data), --config FILE (optional; its data_dir and store.key_file)
// and --key-file FILE ($EDGED_STORE_KEY overrides both key sources).
//
// The store is a single-writer database: while `edged run` holds it these
// commands fail with "database directory is in use by another process";
// stop the daemon, or use its MQTT commands instead.
type storeCLIFlags struct {
	data, config, keyFile *string
	debug                 *bool
}

func addStoreCLIFlags(fs *flag.FlagSet) *storeCLIFlags {
	return &storeCLIFlags{
		data:    fs.String("data", "", "data directory (default: config data_dir, $STATE_DIRECTORY, ./edged-data)"),
		config:  fs.String("config", "", "configuration file (for data_dir and store.key_file)"),
		keyFile: fs.String("key-file", "", "encryption key file (16/24/32 bytes raw or hex; $"+store.KeyEnv+" overrides)"),
		debug:   fs.Bool("debug", false, "debug logging"),
	}
}

// options resolves the store options from the flags and the config.
func (f *storeCLIFlags) options(readOnly bool) (store.Options, error) {
	opts, _, err := f.resolve(readOnly)
	return opts, err
}

// backbone resolves the embedding network: --backbone (flagValue) when
// given, else the config's model.backbone, else the default.
func (f *storeCLIFlags) backbone(flagValue string) (*infer.Backbone, error) {
	cfgValue := ""
	if *f.config != "" && flagValue == "" {
		cfg, err := config.Load(*f.config)
		if err != nil {
			return nil, err
		}
		cfgValue = cfg.Model.Backbone
	}
	return lookupBackbone(flagValue, cfgValue)
}

// keepCrops reports store.keep_crops from the config (default true).
func (f *storeCLIFlags) keepCrops() (bool, error) {
	_, keep, err := f.resolve(true)
	return keep, err
}

// resolve is options, also returning whether face crops are kept
// (store.keep_crops).
func (f *storeCLIFlags) resolve(readOnly bool) (store.Options, bool, error) {
	var cfgDir, cfgKeyFile string
	cfgStore, keepCrops := config.Default().Store, true
	if *f.config != "" {
		cfg, err := config.Load(*f.config)
		if err != nil {
			return store.Options{}, false, err
		}
		cfgDir, cfgKeyFile, cfgStore, keepCrops = cfg.DataDir, cfg.Store.KeyFile, cfg.Store, cfg.KeepCropsEnabled()
	}
	keyFile := *f.keyFile
	if keyFile == "" {
		keyFile = cfgKeyFile
	}
	key, err := store.LoadKey(keyFile, os.Getenv(store.KeyEnv))
	if err != nil {
		return store.Options{}, false, err
	}
	opts := store.DefaultOptions(resolveDataDir(*f.data, cfgDir))
	opts.EncryptionKey, opts.ReadOnly = key, readOnly
	opts.MinFreeBytes = cfgStore.MinFreeBytes()
	opts.Logger = f.logger()
	return opts, keepCrops, nil
}

func (f *storeCLIFlags) logger() *slog.Logger { return newLogger(*f.debug, false) }

// open opens the store. readOnly commands refuse to create a database
// where there is none.
func (f *storeCLIFlags) open(readOnly bool) (*store.Store, int, error) {
	opts, err := f.options(readOnly)
	if err != nil {
		return nil, exitStartup, err
	}
	st, err := store.Open(opts)
	if err != nil {
		if readOnly && errors.Is(err, os.ErrNotExist) {
			return nil, exitFailure, fmt.Errorf("no database in %q (nothing enrolled yet?)", opts.Dir)
		}
		return nil, exitStartup, err
	}
	return st, exitOK, nil
}

// parseInterleaved parses flags that may come after positional arguments
// (`edged backup FILE --data DIR`), which flag.FlagSet alone stops at. It
// returns the positional arguments; everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
