package detect

import (
	"fmt"
	"image"
	"os"
	"sort"
	"sync"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/internal/imagefile"
)

// Detector finds, aligns and rates faces. It is safe for concurrent use: it
// holds a pool of Options.Workers network sets and each call borrows one.
type Detector struct {
	opts Options

	mu     sync.RWMutex // held (read) by calls in flight, (write) by Close
	closed bool
	pool   chan *worker
}

// worker is one set of networks; gocv Nets are not safe for concurrent use.
type worker struct {
	det     gocv.Net
	hasDet  bool
	haar    *gocv.CascadeClassifier
	lm      gocv.Net
	hasLM   bool
	laplace gocv.Mat // scratch
}

// New validates the options and the model files, then loads the networks.
func New(opts Options) (*Detector, error) {
	opts.fill()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	var detData, lmData, haarData []byte
	var err error
	switch opts.Backend {
	case BackendDNN:
		p := resolve(opts.ModelDir, opts.DetectorModel)
		if detData, err = readModel(p, opts.DetectorSHA256, 1024); err != nil {
			return nil, fmt.Errorf("detector model: %w", err)
		}
		if err := checkONNX(detData); err != nil {
			return nil, fmt.Errorf("detector model %s: %w: %v", p, ErrModel, err)
		}
	case BackendHaar:
		if haarData, err = readModel(opts.HaarCascade, "", 512); err != nil {
			return nil, fmt.Errorf("haar cascade: %w", err)
		}
		if err := checkCascade(haarData); err != nil {
			return nil, fmt.Errorf("haar cascade %s: %w: %v", opts.HaarCascade, ErrModel, err)
		}
	}
	if opts.Landmarks {
		p := resolve(opts.ModelDir, opts.LandmarkModel)
		if lmData, err = readModel(p, opts.LandmarkSHA256, 1024); err != nil {
			return nil, fmt.Errorf("landmark model: %w", err)
		}
		if err := checkONNX(lmData); err != nil {
			return nil, fmt.Errorf("landmark model %s: %w: %v", p, ErrModel, err)
		}
	}

	d := &Detector{opts: opts, pool: make(chan *worker, opts.Workers)}
	var haarFile string
	if haarData != nil {
		// CascadeClassifier only loads from a path: give it a private copy of
		// the validated bytes, so the file cannot change between check and load.
		f, err := os.CreateTemp("", "edged-cascade-*.xml")
		if err != nil {
			return nil, fmt.Errorf("haar cascade: %w", err)
		}
		haarFile = f.Name()
		defer os.Remove(haarFile)
		_, werr := f.Write(haarData)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("haar cascade: %w", werr)
		}
	}
	for i := 0; i < opts.Workers; i++ {
		w := &worker{laplace: gocv.NewMat()}
		if detData != nil {
			w.det, err = gocv.ReadNetFromONNXBytes(detData)
			w.hasDet = err == nil
			if err != nil || w.det.Empty() {
				w.close()
				d.closeWorkers()
				return nil, fmt.Errorf("detector model: %w: opencv could not load it: %v", ErrModel, err)
			}
		}
		if haarFile != "" {
			c := gocv.NewCascadeClassifier()
			w.haar = &c
			if !c.Load(haarFile) {
				w.close()
				d.closeWorkers()
				return nil, fmt.Errorf("haar cascade %s: %w: opencv could not load it", opts.HaarCascade, ErrModel)
			}
		}
		if lmData != nil {
			w.lm, err = gocv.ReadNetFromONNXBytes(lmData)
			w.hasLM = err == nil
			if err != nil || w.lm.Empty() {
				w.close()
				d.closeWorkers()
				return nil, fmt.Errorf("landmark model: %w: opencv could not load it: %v", ErrModel, err)
			}
		}
		d.pool <- w
	}
	opts.Logger.Debug("face detector ready", "backend", opts.Backend, "landmarks", opts.Landmarks, "workers", opts.Workers)
	return d, nil
}

// Options returns the effective options (defaults filled in).
func (d *Detector) Options() Options { return d.opts }

func (w *worker) close() {
	if w.hasDet {
		w.det.Close()
	}
	if w.haar != nil {
		w.haar.Close()
	}
	if w.hasLM {
		w.lm.Close()
	}
	w.laplace.Close()
}

func (d *Detector) closeWorkers() {
	for {
		select {
		case w := <-d.pool:
			w.close()
		default:
			return
		}
	}
}

// Close releases the networks; it waits for calls in flight. Later calls
// return ErrClosed.
func (d *Detector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.closed = true
	d.closeWorkers()
	return nil
}

// Detect finds the faces in a frame (8-bit BGR; grey and BGRA are converted),
// highest score first, each with landmarks, chip and quality.
func (d *Detector) Detect(img gocv.Mat) ([]face.Face, error) {
	if img.Ptr() == nil || img.Empty() {
		return nil, fmt.Errorf("%w: empty frame", ErrImage)
	}
	bgr := img
	switch img.Type() {
	case gocv.MatTypeCV8UC3:
	case gocv.MatTypeCV8UC1:
		bgr = gocv.NewMat()
		defer bgr.Close()
		gocv.CvtColor(img, &bgr, gocv.ColorGrayToBGR)
	case gocv.MatTypeCV8UC4:
		bgr = gocv.NewMat()
		defer bgr.Close()
		gocv.CvtColor(img, &bgr, gocv.ColorBGRAToBGR)
	default:
		return nil, fmt.Errorf("%w: frame type %v (want 8-bit BGR)", ErrImage, img.Type())
	}

	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return nil, ErrClosed
	}
	w := <-d.pool
	defer func() { d.pool <- w }()

	var boxes []detection
	if d.opts.Backend == BackendHaar {
		boxes = d.detectHaar(w, bgr)
	} else {
		var err error
		if boxes, err = d.detectDNN(w, bgr); err != nil {
			return nil, err
		}
	}
	faces := make([]face.Face, 0, len(boxes))
	for _, b := range boxes {
		faces = append(faces, d.describe(w, bgr, b))
	}
	return faces, nil
}

// DetectFile reads a JPEG or PNG file and detects the faces in it.
func (d *Detector) DetectFile(path string) ([]face.Face, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImage, err)
	}
	faces, err := d.DetectBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return faces, nil
}

// DetectBytes decodes a JPEG or PNG image (e.g. an enrollment photo sent over
// MQTT) and detects the faces in it.
func (d *Detector) DetectBytes(data []byte) ([]face.Face, error) {
	img, err := DecodeImage(data)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	return d.Detect(img)
}

// DecodeImage decodes JPEG or PNG bytes into a BGR Mat after checking the
// header in Go (format, size). The caller closes the Mat.
func DecodeImage(data []byte) (gocv.Mat, error) {
	if _, err := imagefile.Check(data); err != nil {
		return gocv.Mat{}, fmt.Errorf("%w: %v", ErrImage, err)
	}
	img, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil || img.Empty() {
		if err == nil {
			img.Close()
		}
		return gocv.Mat{}, fmt.Errorf("%w: opencv could not decode it (corrupt?)", ErrImage)
	}
	return img, nil
}

// detection is one raw detector box, in frame pixels (float).
type detection struct {
	x1, y1, x2, y2 float32
	score          float32
}

func (b detection) w() float32 { return b.x2 - b.x1 }
func (b detection) h() float32 { return b.y2 - b.y1 }

func (b detection) rect() image.Rectangle {
	return image.Rect(int(b.x1+0.5), int(b.y1+0.5), int(b.x2+0.5), int(b.y2+0.5))
}

// keepSize applies MinFace/MaxFace.
func (d *Detector) keepSize(b detection) bool {
	s := sqrt32(b.w() * b.h())
	if b.w() <= 1 || b.h() <= 1 || s < float32(d.opts.MinFace) {
		return false
	}
	return d.opts.MaxFace == 0 || s <= float32(d.opts.MaxFace)
}

// nms sorts by score and drops boxes overlapping a better one by more than
// thr (IoU), greedy.
func nms(dets []detection, thr float32, maxKeep int) []detection {
	sort.SliceStable(dets, func(i, j int) bool { return dets[i].score > dets[j].score })
	keep := dets[:0:0]
	for _, c := range dets {
		ok := true
		for _, k := range keep {
			if iou(c, k) > thr {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, c)
			if maxKeep > 0 && len(keep) == maxKeep {
				break
			}
		}
	}
	return keep
}

func iou(a, b detection) float32 {
	ix := min(a.x2, b.x2) - max(a.x1, b.x1)
	iy := min(a.y2, b.y2) - max(a.y1, b.y1)
	if ix <= 0 || iy <= 0 {
		return 0
	}
	inter := ix * iy
	return inter / (a.w()*a.h() + b.w()*b.h() - inter)
}
