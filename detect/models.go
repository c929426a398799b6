package detect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Model files larger than this are refused (the pinned ones are ~1.2 MB).
const maxModelSize = 256 << 20

// readModel reads a model file and checks its size and, when want is set,
// its sha256, so that OpenCV only ever sees validated bytes.
func readModel(path, want string, minSize int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModel, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrModel, path)
	}
	if st.Size() < minSize || st.Size() > maxModelSize {
		return nil, fmt.Errorf("%w: %s has %d bytes (want %d..%d)", ErrModel, path, st.Size(), minSize, maxModelSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModel, err)
	}
	if want != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, want) {
			return nil, fmt.Errorf("%w: %s: sha256 %s, want %s (re-run `make setup`)", ErrModel, path, got, want)
		}
	}
	return data, nil
}

// resolve returns name under dir unless it is absolute.
func resolve(dir, name string) string {
	if filepath.IsAbs(name) || dir == "" {
		return name
	}
	return filepath.Join(dir, name)
}

// checkONNX walks the protobuf wire format of an ONNX ModelProto: every
// top-level field must parse and stay inside the file (this catches
// truncation and most corruption), ir_version (1) must be sane, and the graph
// (7) must parse too and hold nodes (1), inputs (11) and outputs (12).
// OpenCV's ONNX importer aborts the process on what this rejects.
func checkONNX(data []byte) error {
	var graph []byte
	irVersion := uint64(0)
	err := walkProto(data, func(field int, wire int, v uint64, b []byte) error {
		switch {
		case field == 1 && wire == 0:
			irVersion = v
		case field == 7 && wire == 2:
			graph = b
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("onnx model: %w", err)
	}
	if irVersion < 1 || irVersion > 100 {
		return fmt.Errorf("onnx model: ir_version %d", irVersion)
	}
	if graph == nil {
		return errors.New("onnx model: no graph")
	}
	var nodes, inputs, outputs int
	err = walkProto(graph, func(field int, wire int, _ uint64, b []byte) error {
		if wire != 2 {
			return nil
		}
		switch field {
		case 1:
			nodes++
		case 11:
			inputs++
		case 12:
			outputs++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("onnx graph: %w", err)
	}
	if nodes == 0 || inputs == 0 || outputs == 0 {
		return fmt.Errorf("onnx graph: %d nodes, %d inputs, %d outputs", nodes, inputs, outputs)
	}
	return nil
}

var errProto = errors.New("malformed protobuf")

// walkProto calls fn for each field of one protobuf message.
func walkProto(data []byte, fn func(field, wire int, v uint64, b []byte) error) error {
	for i := 0; i < len(data); {
		key, n := uvarint(data[i:])
		if n <= 0 {
			return fmt.Errorf("%w: bad key at byte %d", errProto, i)
		}
		i += n
		field, wire := int(key>>3), int(key&7)
		if field == 0 {
			return fmt.Errorf("%w: field 0 at byte %d", errProto, i)
		}
		var v uint64
		var b []byte
		switch wire {
		case 0:
			v, n = uvarint(data[i:])
			if n <= 0 {
				return fmt.Errorf("%w: bad varint at byte %d", errProto, i)
			}
			i += n
		case 1:
			if len(data)-i < 8 {
				return fmt.Errorf("%w: truncated fixed64 at byte %d", errProto, i)
			}
			i += 8
		case 5:
			if len(data)-i < 4 {
				return fmt.Errorf("%w: truncated fixed32 at byte %d", errProto, i)
			}
			i += 4
		case 2:
			l, n := uvarint(data[i:])
			if n <= 0 || l > uint64(len(data)-i-n) {
				return fmt.Errorf("%w: length-delimited field %d runs past the end (truncated?) at byte %d", errProto, field, i)
			}
			i += n
			b = data[i : i+int(l)]
			i += int(l)
		default:
			return fmt.Errorf("%w: wire type %d at byte %d", errProto, wire, i)
		}
		if err := fn(field, wire, v, b); err != nil {
			return err
		}
	}
	return nil
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		x |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return x, i + 1
		}
	}
	return 0, -1
}

// checkCascade parses a cascade XML fully in Go: OpenCV's FileStorage throws
// (and gocv aborts) on malformed XML.
func checkCascade(data []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(data))
	depth, root, cascade := 0, "", false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("cascade xml: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				root = t.Name.Local
			}
			if depth == 1 { // <cascade> (new format) or <haarcascade_*> (old)
				cascade = true
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if root != "opencv_storage" || !cascade || depth != 0 {
		return fmt.Errorf("cascade xml: root %q, cascade element %v", root, cascade)
	}
	return nil
}
