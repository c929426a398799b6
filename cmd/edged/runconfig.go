package main

// Configuration and logging for the daemon commands (run, replay, bench).

import (
	"flag"
	"os"
	"strings"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/config"
)

// cameraFlags collects repeated --camera NAME=URL flags.
type cameraFlags []config.Camera

func (c *cameraFlags) String() string {
	var s []string
	for _, cam := range *c {
		s = append(s, cam.Name+"="+cam.URL)
	}
	return strings.Join(s, ",")
}

func (c *cameraFlags) Set(v string) error {
	cam, err := config.ParseCameraFlag(v)
	if err != nil {
		return err
	}
	*c = append(*c, cam)
	return nil
}

// configFlags are the flags that override the file.
type configFlags struct {
	file     string
	broker   string
	device   string
	data     string
	http     string
	backbone string
	fleet    string
	cameras  cameraFlags
}

// addBackboneVar adds --backbone, overriding the config's model.backbone.
func (f *configFlags) addBackboneVar(fs *flag.FlagSet) {
	fs.StringVar(&f.backbone, "backbone", "", "embedding `network`: mobilefacenet or dlib (overrides model.backbone; default mobilefacenet)")
}

// load reads the file (when given) over the defaults, applies the flags and
// the environment, fills derived defaults and validates. Errors are
// startup errors (exit status 3).
func (f *configFlags) load() (config.Config, string, error) {
	cfg := config.Default()
	if f.file != "" {
		var err error
		if cfg, err = config.ParseFile(f.file); err != nil {
			return cfg, "", agent.StartupError{Err: err}
		}
	}
	if f.broker != "" {
		if f.broker == "embedded" {
			cfg.MQTT.Broker = ""
		} else {
			cfg.MQTT.Broker = f.broker
		}
	}
	if f.device != "" {
		cfg.Device = f.device
	}
	if f.http != "" {
		cfg.HTTP.Addr = f.http
	}
	if f.fleet != "" {
		cfg.Fleet.Name = f.fleet
	}
	if f.backbone != "" {
		cfg.Model.Backbone = strings.ToLower(strings.TrimSpace(f.backbone))
	}
	if len(f.cameras) > 0 {
		cfg.Cameras = append([]config.Camera(nil), f.cameras...)
	}
	cfg.ApplyEnv(os.Getenv)
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		if ve, ok := err.(*config.ValidationError); ok {
			ve.File = f.file
		}
		return cfg, "", agent.StartupError{Err: err}
	}
	dataDir := resolveDataDir(f.data, cfg.DataDir)
	return cfg, dataDir, nil
}

// modelDir is the configured model directory or the default one.
func modelDirOf(cfg config.Config) string {
	if cfg.ModelDir != "" {
		return cfg.ModelDir
	}
	return defaultModelDir()
}
