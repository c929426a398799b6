package finetune

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"fmt"
	"os"

	"github.com/edged-dev/edged/infer"
)

// Checkpoint files (edged train): a gob-encoded checkpoint followed by the
// SHA-256 of those bytes, written atomically (temporary file + rename), so
// an interruption leaves the previous checkpoint or the new one, and a
// damaged file is refused rather than half-loaded.
type checkpoint struct {
	Version int
	// Model identifies what the values belong to: resuming with other
	// options would load mismatched tensors.
	Model string
	Step  int64
	// Values holds every variable (model and optimiser state) by name.
	Values map[string][]float32
	// Meta is the caller's loop state (epoch, batch, ...).
	Meta map[string]int64
}

const checkpointVersion = 1

func (t *Trainer) modelKey() string {
	return fmt.Sprintf("loss=%v layers=%d unfreeze=%v optimizer=%v", t.opts.Loss, t.layers, t.opts.Unfreeze, t.opts.Optimizer)
}

// SaveCheckpoint writes the trainer's complete state (parameters, optimiser
// slots, step count) and the caller's meta to path.
func (t *Trainer) SaveCheckpoint(path string, meta map[string]int64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	vals, err := t.read(t.allVars())
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(checkpoint{Version: checkpointVersion, Model: t.modelKey(), Step: t.step, Values: vals, Meta: meta}); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return writeFileAtomic(path, buf.Bytes())
}

// LoadCheckpoint restores a state written by SaveCheckpoint for a trainer
// built with the same options and returns its meta. A missing, damaged or
// mismatched file is an error wrapping ErrCheckpoint, and the trainer is
// left as it was.
func (t *Trainer) LoadCheckpoint(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	if len(b) < sha256.Size {
		return nil, fmt.Errorf("%w: %s: truncated", ErrCheckpoint, path)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: %s: checksum mismatch (damaged or truncated)", ErrCheckpoint, path)
	}
	var c checkpoint
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, path, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("%w: %s: version %d, this build reads %d", ErrCheckpoint, path, c.Version, checkpointVersion)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if c.Model != t.modelKey() {
		return nil, fmt.Errorf("%w: %s was written for %q, this run is %q", ErrCheckpoint, path, c.Model, t.modelKey())
	}
	for _, v := range t.allVars() {
		got, ok := c.Values[v.name]
		if !ok || len(got) != numElements(v.shape) || !finite(got) {
			return nil, fmt.Errorf("%w: %s: variable %s missing or of the wrong size", ErrCheckpoint, path, v.name)
		}
	}
	if err := t.assign(t.allVars(), c.Values); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	t.step = c.Step
	return c.Meta, nil
}

// SaveParams writes backbone parameters (TailParams of an unfrozen trainer)
// in the checkpoint container: gob + SHA-256, written atomically.
func SaveParams(path string, params []infer.Param) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(params); err != nil {
		return err
	}
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	return writeFileAtomic(path, buf.Bytes())
}

// LoadParams reads a file written by SaveParams.
func LoadParams(path string) ([]infer.Param, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < sha256.Size {
		return nil, fmt.Errorf("%w: %s: truncated", ErrCheckpoint, path)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: %s: checksum mismatch", ErrCheckpoint, path)
	}
	var ps []infer.Param
	if err := gob.NewDecoder(bytes.NewReader(body)).Decode(&ps); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, path, err)
	}
	for _, p := range ps {
		n := 1
		for _, d := range p.Shape {
			n *= int(d)
		}
		if n != len(p.Values) || !finite(p.Values) {
			return nil, fmt.Errorf("%w: %s: parameter %s has %d values for shape %v", ErrCheckpoint, path, p.Name, len(p.Values), p.Shape)
		}
	}
	return ps, nil
}
