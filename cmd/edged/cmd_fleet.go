package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/fleet"
	"github.com/edged-dev/edged/store"
)

func init() {
	register(&Command{
		Name:  "fleet",
		Usage: "status|resync [--config FILE] [--data DIR] [--json]",
		Short: "the fleet this device shares people with: members seen, people and versions, last sync, conflicts resolved (resync: publish every person again)",
		Run:   runFleet,
	})
}

// runFleet reads the fleet status from the store when the daemon is
// stopped, and asks the running daemon over MQTT when it holds the store.
func runFleet(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 || (args[0] != "status" && args[0] != "resync") {
		return exitUsage, usageError("want fleet status or fleet resync")
	}
	action, args := args[0], args[1:]
	fs := flag.NewFlagSet("fleet "+action, flag.ContinueOnError)
	sf := addStoreCLIFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return exitUsage, err
	}
	cfg := config.Default()
	cfg.ApplyEnv(os.Getenv)
	cfg.Finish()
	if *sf.config != "" {
		var err error
		if cfg, err = config.Load(*sf.config); err != nil {
			return exitStartup, err
		}
	}
	if !cfg.FleetEnabled() {
		return exitFailure, errors.New("this device is in no fleet: set fleet.name in the configuration (--config FILE), or run edged run --fleet NAME")
	}
	var status fleet.Status
	st, code, err := sf.open(true)
	switch {
	case err == nil && action == "status":
		defer st.Close()
		if status, err = fleet.ReadStatus(st, cfg.Model.Backbone); err != nil {
			return exitFailure, err
		}
		status.Fleet, status.Device = cfg.Fleet.Name, cfg.Device
	case err == nil || errors.Is(err, store.ErrLocked):
		// The daemon holds the store (or a resync, which only it can do):
		// ask it over MQTT.
		if st != nil {
			st.Close()
		}
		broker := cfg.MQTT.Broker
		if broker == "" {
			broker = "tcp://" + cfg.MQTT.Listen
		}
		qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		status, err = fleet.AskStatus(qctx, fleet.PahoOptions{Broker: broker, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password},
			cfg.MQTT.TopicPrefix+"/"+cfg.Device, action)
		if err != nil {
			return exitFailure, err
		}
	default:
		return code, err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return exitOK, enc.Encode(status)
	}
	return exitOK, status.WriteText(os.Stdout)
}
