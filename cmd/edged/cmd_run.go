package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/config"
)

func init() {
	register(&Command{
		Name:  "run",
		Usage: "[--config FILE] [--broker URL|embedded] [--device ID] [--data DIR] [--camera NAME=URL]... [--http ADDR] [--debug]",
		Short: "run the daemon: cameras -> faces -> recognition -> MQTT events, MQTT commands",
		Run:   runDaemon,
	})
}

// processStart is when the process started, for the start-to-ready time.
var processStart = time.Now()

func runDaemon(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var cf configFlags
	fs.StringVar(&cf.file, "config", "", "configuration `file` (YAML; docs/config.md)")
	fs.StringVar(&cf.broker, "broker", "", "MQTT broker `URL` (tcp://host:1883, ssl://...); 'embedded' or none: the embedded broker")
	fs.StringVar(&cf.device, "device", "", "device `id` in topics (default: the host name)")
	fs.StringVar(&cf.data, "data", "", "data `directory` (default: the config's, $STATE_DIRECTORY, ./edged-data)")
	fs.Var(&cf.cameras, "camera", "camera `NAME=URL` (repeatable; replaces the config's cameras): /dev/video0, 0, rtsp://..., a video file, an image folder, gst:PIPELINE")
	fs.StringVar(&cf.http, "http", "", "metrics/health listen `address` (default 127.0.0.1:9108; off disables)")
	cf.addBackboneVar(fs)
	fs.StringVar(&cf.fleet, "fleet", "", "join the fleet `NAME`: share people with the other devices of that name on the broker (fleet.name; docs/fleet.md)")
	debug := fs.Bool("debug", false, "debug logging")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, usageError("unexpected argument %q", fs.Arg(0))
	}
	cfg, dataDir, err := cf.load()
	if err != nil {
		return exitCodeOf(err), err
	}
	log, level := agent.NewLogger(cfg.Log, *debug)
	a, err := agent.New(agent.Options{Config: cfg, ConfigFile: cf.file, DataDir: dataDir, ModelDir: modelDirOf(cfg),
		Logger: log, Level: level, Debug: *debug, Version: version, Started: processStart})
	if err != nil {
		return exitCodeOf(err), err
	}
	if err := a.Start(); err != nil {
		_ = a.Close()
		return exitCodeOf(err), err
	}
	// SIGHUP reloads the file (the flags still win); the agent logs a
	// refused one and keeps running.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	load := func() (config.Config, error) { cfg, _, err := cf.load(); return cfg, err }
	for {
		select {
		case <-hup:
			_, _ = a.Reload(load)
		case <-ctx.Done():
			_ = a.Close() // what fails on the way down is logged; the stop itself is clean
			return exitOK, nil
		}
	}
}
