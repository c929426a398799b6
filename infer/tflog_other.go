//go:build !linux

package infer

import "os"

// Off Linux, setting TF_CPP_MIN_LOG_LEVEL here quiets what TensorFlow logs
// after package init (its load-time lines are already out).
func init() {
	if _, ok := os.LookupEnv("TF_CPP_MIN_LOG_LEVEL"); !ok {
		os.Setenv("TF_CPP_MIN_LOG_LEVEL", "2")
	}
}

// quietTF only captures stderr on Linux (edged's target).
func quietTF(keepAll bool, fn func() error) error { return fn() }
