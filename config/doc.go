// Package config loads edged's one YAML configuration file into a typed
// struct with defaults, applies environment overrides for secrets and
// validates the result, listing every problem at once with the key it is
// about.
//
// # Usage
//
//	cfg, err := config.Load("/etc/edged/edged.yaml") // defaults + file + env
//	if err != nil { ... }                             // *ValidationError lists every problem
//	for i := range cfg.Cameras {
//		cam := cfg.Camera(i) // the camera with the global settings filled in
//		...
//	}
//
// The smallest useful file is one camera URL:
//
//	cameras: [rtsp://192.168.1.20/stream1]
//
// Every key, its default and its unit are in docs/config.md; the example
// file systemd/edged.example.yaml shows them all. The package is pure Go.
package config
