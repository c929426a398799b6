package tflite

import (
	"errors"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// internally consistent (every index in range, every constant decodable).
func FuzzParse(f *testing.F) {
	f.Add(addModel().build())
	f.Add(convModel().build())
	custom := addModel()
	custom.codes[0], custom.custom = 32, "MyOp"
	f.Add(custom.build())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrFormat nor ErrUnsupported", err)
			}
			return
		}
		checkConsistent(t, m)
	})
}
