package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	tf "github.com/wamuir/graft/tensorflow"
	"gocv.io/x/gocv"
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
	if err := fs.Parse(args); err != nil {
		return exitUsage, err
	}
	v := map[string]string{"edged": version, "tensorflow": tf.Version(), "opencv": gocv.OpenCVVersion()}
	if *asJSON {
		return exitOK, json.NewEncoder(os.Stdout).Encode(v)
	}
	fmt.Printf("edged %s tensorflow %s opencv %s\n", v["edged"], v["tensorflow"], v["opencv"])
	return exitOK, nil
}
