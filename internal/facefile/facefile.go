package facefile

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/jpeg" // chip files may be JPEG
	"log/slog"
	"math"
	"os"
	"sync"

	"gocv.io/x/gocv"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/internal/imagefile"
)

// Crop modes: how a face chip is obtained from an image.
const (
	CropAligned = "aligned" // detector + landmarks + similarity warp (detect package)
	CropCenter  = "center"  // fixed centre crop: the LFW convention, no detection
)

// Options configure a Pipeline.
type Options struct {
	// Models is the model directory.
	Models string
	// Backbone is the embedding network; required.
	Backbone *infer.Backbone
	// Crop is CropAligned (the detector; the default) or CropCenter.
	Crop string
	// Chips says the files are aligned chips of the backbone's size: no
	// detector is opened (EmbedChipFiles).
	Chips bool
	// Flip averages each embedding with that of the mirrored chip.
	Flip bool
	// Workers is the detector's pool size.
	Workers int
	// MaxBatch is the most chips per network run (0: infer's default).
	MaxBatch int
	// Logger; default: infer's and detect's defaults.
	Logger *slog.Logger
}

// Pipeline turns image files into faces with embeddings. It is safe for
// concurrent use (the detector and the embedder are).
type Pipeline struct {
	backbone *infer.Backbone
	det      *detect.Detector // nil unless crop == aligned (and not chip mode)
	emb      *infer.Embedder
}

// Open loads the models: the detector (aligning to the backbone's
// template) unless o.Chips or o.Crop is CropCenter, and the embedder.
func Open(o Options) (*Pipeline, error) {
	if o.Crop == "" {
		o.Crop = CropAligned
	}
	p := &Pipeline{backbone: o.Backbone}
	if !o.Chips && o.Crop == CropAligned {
		opts := detect.DefaultOptions(o.Models)
		opts.Workers = o.Workers
		opts.Template = o.Backbone.Template
		opts.Logger = o.Logger
		det, err := detect.New(opts)
		if err != nil {
			return nil, err
		}
		p.det = det
	}
	emb, err := infer.NewEmbedder(o.Models, infer.Options{Backbone: o.Backbone.ID, Flip: o.Flip, MaxBatch: o.MaxBatch, Logger: o.Logger})
	if err != nil {
		p.Close()
		return nil, err
	}
	p.emb = emb
	return p, nil
}

// Close releases the models.
func (p *Pipeline) Close() {
	if p.det != nil {
		p.det.Close()
	}
	if p.emb != nil {
		p.emb.Close()
	}
}

// Aligned reports whether faces come from the detector (false: the fixed
// centre crop).
func (p *Pipeline) Aligned() bool { return p.det != nil }

// Embed returns one raw embedding per chip, in order.
func (p *Pipeline) Embed(chips []face.Chip) ([]face.Embedding, error) { return p.emb.Embed(chips) }

// Faces finds the faces of an image file, each with its chip.
func (p *Pipeline) Faces(path string) ([]face.Face, error) {
	if p.det != nil {
		return p.det.DetectFile(path)
	}
	img, err := readImage(path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	f, err := CenterCrop(img, p.backbone.InputSize)
	if err != nil {
		return nil, err
	}
	return []face.Face{f}, nil
}

// readImage reads an image file and decodes it into a BGR Mat (the caller
// closes it).
func readImage(path string) (gocv.Mat, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return gocv.Mat{}, err
	}
	return detect.DecodeImage(data)
}

// EmbedFile returns the faces of an image file and their embeddings.
func (p *Pipeline) EmbedFile(path string) ([]face.Face, []face.Embedding, error) {
	faces, err := p.Faces(path)
	if err != nil {
		return nil, nil, err
	}
	chips := make([]face.Chip, len(faces))
	for i, f := range faces {
		chips[i] = f.Chip
	}
	embs, err := p.emb.Embed(chips)
	if err != nil {
		return nil, nil, err
	}
	return faces, embs, nil
}

// EmbedCentralFace embeds the face of an LFW-style photo (CentralFace);
// found is false when no face was detected and the centre crop was used.
// It is eval.LFWVerify's embed function.
func (p *Pipeline) EmbedCentralFace(path string) (face.Embedding, bool, error) {
	f, found, err := p.CentralFace(path)
	if err != nil {
		return nil, false, err
	}
	e, err := p.emb.Embed([]face.Chip{f.Chip})
	if err != nil {
		return nil, false, err
	}
	return e[0], found, nil
}

// CentralFace returns the face of an LFW-style photo: among the detected
// faces, the highest-scored one whose box contains the image centre, else
// the one whose centre is nearest to it; with no face detected (or with
// CropCenter), the fixed centre crop, and found=false for the former.
func (p *Pipeline) CentralFace(path string) (f face.Face, found bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return face.Face{}, false, err
	}
	img, err := detect.DecodeImage(data)
	if err != nil {
		return face.Face{}, false, fmt.Errorf("%s: %w", path, err)
	}
	defer img.Close()
	if p.det == nil {
		f, err := CenterCrop(img, p.backbone.InputSize)
		return f, true, err
	}
	faces, err := p.det.Detect(img)
	if err != nil {
		return face.Face{}, false, fmt.Errorf("%s: %w", path, err)
	}
	if len(faces) == 0 {
		f, err := CenterCrop(img, p.backbone.InputSize)
		return f, false, err
	}
	c := image.Pt(img.Cols()/2, img.Rows()/2)
	best := -1
	for i, fc := range faces {
		if c.In(fc.Box) && (best < 0 || fc.Score > faces[best].Score) {
			best = i
		}
	}
	if best < 0 {
		bestDist := math.Inf(1)
		for i, fc := range faces {
			mid := fc.Box.Min.Add(fc.Box.Max).Div(2)
			if d := math.Hypot(float64(mid.X-c.X), float64(mid.Y-c.Y)); d < bestDist {
				best, bestDist = i, d
			}
		}
	}
	return faces[best], true, nil
}

// ChipResult is one chip file of EmbedChipFiles: its embedding, or the
// error that kept it out.
type ChipResult struct {
	Path      string
	Embedding face.Embedding
	Err       error
}

// EmbedChipFiles embeds chip files (ReadChip) and gives emit the results a
// batch at a time, in input order. Whole-process time is what a user sees:
// files are decoded by `workers` goroutines a batch at a time, and each
// batch goes to the network in one session run (the embedder's MaxBatch),
// instead of one file per call. A cancelled ctx stops it between batches
// with ctx's error; an error from emit or the network stops it too.
func (p *Pipeline) EmbedChipFiles(ctx context.Context, paths []string, workers int, emit func([]ChipResult) error) error {
	batch := p.emb.Options().MaxBatch
	for start := 0; start < len(paths); start += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		group := paths[start:min(start+batch, len(paths))]
		chips := make([]face.Chip, len(group))
		errs := make([]error, len(group))
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(workers, len(group)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					chips[i], errs[i] = ReadChip(group[i], p.backbone.InputSize)
				}
			}()
		}
		for i := range group {
			next <- i
		}
		close(next)
		wg.Wait()
		var ok []face.Chip
		for i, c := range chips {
			if errs[i] == nil {
				ok = append(ok, c)
			}
		}
		embs, err := p.emb.Embed(ok)
		if err != nil {
			return err
		}
		res := make([]ChipResult, len(group))
		k := 0
		for i, path := range group {
			res[i] = ChipResult{Path: path, Err: errs[i]}
			if errs[i] == nil {
				res[i].Embedding = embs[k]
				k++
			}
		}
		if err := emit(res); err != nil {
			return err
		}
	}
	return nil
}

// ReadChip decodes a size x size PNG or JPEG chip with Go's decoders
// (exact for PNG, which the golden vectors rely on).
func ReadChip(path string, size int) (face.Chip, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return face.Chip{}, err
	}
	info, err := imagefile.Check(data)
	if err != nil {
		return face.Chip{}, err
	}
	if info.Width != size || info.Height != size {
		return face.Chip{}, fmt.Errorf("%w: image is %dx%d, the backbone takes %dx%d chips (--backbone?)", face.ErrChipSize, info.Width, info.Height, size, size)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return face.Chip{}, fmt.Errorf("decode %s: %w", info.Format, err)
	}
	return face.ChipFromImage(img)
}

// CenterCrop cuts the fixed centre square used for LFW without a
// detector: side 0.56 of the shorter edge (rows/cols 55..195 of a 250x250
// image), resized to size x size with bilinear interpolation.
func CenterCrop(img gocv.Mat, size int) (face.Face, error) {
	w, h := img.Cols(), img.Rows()
	side := int(0.56*float64(min(w, h)) + 0.5)
	if side < 8 {
		return face.Face{}, fmt.Errorf("image %dx%d is too small for a face", w, h)
	}
	box := image.Rect((w-side)/2, (h-side)/2, (w-side)/2+side, (h-side)/2+side)
	roi := img.Region(box)
	defer roi.Close()
	resized := gocv.NewMat()
	defer resized.Close()
	gocv.Resize(roi, &resized, image.Pt(size, size), 0, 0, gocv.InterpolationLinear)
	rgb := gocv.NewMat()
	defer rgb.Close()
	gocv.CvtColor(resized, &rgb, gocv.ColorBGRToRGB)
	pix, err := rgb.DataPtrUint8()
	if err != nil {
		return face.Face{}, err
	}
	chip := face.Chip{Size: size, Pix: append([]uint8(nil), pix...)}
	if err := chip.Validate(); err != nil {
		return face.Face{}, err
	}
	return face.Face{
		Box:     box,
		Aligned: false,
		Chip:    chip,
		Quality: face.Quality{Size: float32(side), Issue: "not aligned (centre crop)"},
	}, nil
}
