package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	tf "github.com/wamuir/graft/tensorflow"
	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/infer"
)

// version is set at build time: -ldflags "-X main.version=v0.1.0".
var version = "v0.1.0-dev"

func init() {
	register(&Command{
		Name:  "version",
		Usage: "[--json]",
		Short: "print edged's version and the linked TensorFlow and OpenCV versions",
		Run:   runVersion,
	})
}

func runVersion(_ context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print a JSON object")
	cfgFile := fs.String("config", "", "configuration `file`: report its model.backbone instead of the default")
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	backbone := infer.DefaultBackbone
	if *cfgFile != "" {
		cfg, err := config.ParseFile(*cfgFile)
		if err != nil {
			return exitStartup, err
		}
		if cfg.Model.Backbone != "" {
			backbone = cfg.Model.Backbone
		}
	}
	v := map[string]string{"edged": version, "tensorflow": tf.Version(), "opencv": gocv.OpenCVVersion(), "backbone": backbone}
	if *asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(v)
	}
	fmt.Printf("edged %s tensorflow %s opencv %s backbone %s\n", v["edged"], v["tensorflow"], v["opencv"], v["backbone"])
	return exitOK, nil
}
