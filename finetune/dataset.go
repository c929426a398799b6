package finetune

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of dataset images
	_ "image/png"
	"math"
	"os"
	"path/filepath"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/eval"
	"github.com/edged-dev/edged/face"
)

// Image is one file of a folder-per-person dataset (eval.ScanFolders
// lists them).
type Image = eval.FolderImage

// Example is one embedded dataset image (or why it could not be used).
type Example struct {
	Person  string
	Path    string
	Raw     []float32 // raw backbone embedding
	Feat    []float32 // UnfreezeInputStage features (when asked for)
	Aligned bool
	Err     string // not empty: no usable face (the file is skipped)
	Size    int64  // file size and modification time: the cache key
	ModTime int64
}

// cacheFile is the on-disk cache of embedded examples.
type cacheFile struct {
	Version  int
	Features bool
	Examples map[string]Example // by Path
}

const cacheVersion = 1

// EmbedOptions configure EmbedImages.
type EmbedOptions struct {
	// Detect finds the faces of an image file (detect.Detector.DetectFile).
	Detect func(path string) ([]face.Face, error)
	// Extractor runs the backbone.
	Extractor *Extractor
	// Features also computes the UnfreezeInputStage features (--unfreeze).
	Features bool
	// CachePath, when set, keeps the results between runs (keyed by path,
	// size and modification time); a corrupt or stale cache is rebuilt.
	CachePath string
	// Progress is called after each image with (done, total).
	Progress func(done, total int)
	// Batch is the number of chips per backbone call. Default 16.
	Batch int
}

// EmbedImages detects the subject of every image (enroll.MainFace), embeds it
// (and extracts features) and returns one Example per image in order;
// images without a usable face carry Err. Cached results are reused and
// new ones saved every few hundred images, so an interrupted run resumes.
func EmbedImages(ctx context.Context, images []Image, o EmbedOptions) ([]Example, error) {
	if o.Detect == nil || o.Extractor == nil {
		return nil, fmt.Errorf("%w: EmbedImages needs a detector and an extractor", ErrOptions)
	}
	if o.Batch <= 0 {
		o.Batch = 16
	}
	cache := loadCache(o.CachePath, o.Features)
	out := make([]Example, len(images))
	type pending struct {
		i    int
		chip face.Chip
	}
	var queue []pending
	dirty := 0
	flush := func() error {
		if len(queue) == 0 {
			return nil
		}
		chips := make([]face.Chip, len(queue))
		for k, p := range queue {
			chips[k] = p.chip
		}
		raw, feat, err := o.Extractor.Extract(chips, o.Features)
		if err != nil {
			return err
		}
		for k, p := range queue {
			out[p.i].Raw = raw[k]
			if o.Features {
				out[p.i].Feat = feat[k]
			}
			cache.Examples[out[p.i].Path] = out[p.i]
			dirty++
		}
		queue = queue[:0]
		if dirty >= 256 {
			dirty = 0
			return saveCache(o.CachePath, cache)
		}
		return nil
	}
	for i, img := range images {
		if err := ctx.Err(); err != nil {
			_ = flush()
			_ = saveCache(o.CachePath, cache)
			return nil, err
		}
		st, err := os.Stat(img.Path)
		if err != nil {
			out[i] = Example{Person: img.Person, Path: img.Path, Err: err.Error()}
			continue
		}
		ex := Example{Person: img.Person, Path: img.Path, Size: st.Size(), ModTime: st.ModTime().UnixNano()}
		if c, ok := cache.Examples[img.Path]; ok && c.Size == ex.Size && c.ModTime == ex.ModTime && c.Person == img.Person &&
			(c.Err != "" || (len(c.Raw) > 0 && (!o.Features || len(c.Feat) > 0))) {
			out[i] = c
		} else {
			out[i] = ex
			chip, aligned, err := detectSubject(img.Path, o.Detect)
			if err != nil {
				out[i].Err = err.Error()
				cache.Examples[img.Path] = out[i]
			} else {
				out[i].Aligned = aligned
				queue = append(queue, pending{i: i, chip: chip})
				if len(queue) >= o.Batch {
					if err := flush(); err != nil {
						return nil, err
					}
				}
			}
		}
		if o.Progress != nil {
			o.Progress(i+1, len(images))
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if err := saveCache(o.CachePath, cache); err != nil {
		return nil, err
	}
	return out, nil
}

func detectSubject(path string, detect func(string) ([]face.Face, error)) (face.Chip, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return face.Chip{}, false, err
	}
	cfg, _, err := image.DecodeConfig(f)
	f.Close()
	if err != nil {
		return face.Chip{}, false, fmt.Errorf("not a JPEG or PNG image: %v", err)
	}
	faces, err := detect(path)
	if err != nil {
		return face.Chip{}, false, err
	}
	// The same choice as `edged enroll` and `edged eval fewshot`.
	k, _ := enroll.MainFace(faces, cfg.Width, cfg.Height, 1)
	if k < 0 {
		return face.Chip{}, false, errors.New("no face found")
	}
	return faces[k].Chip, faces[k].Aligned, nil
}

func loadCache(path string, features bool) *cacheFile {
	empty := &cacheFile{Version: cacheVersion, Features: features, Examples: map[string]Example{}}
	if path == "" {
		return empty
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return empty
	}
	var c cacheFile
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&c); err != nil || c.Version != cacheVersion || c.Examples == nil {
		return empty // corrupt or from another version: rebuild
	}
	for k, ex := range c.Examples {
		if !finite(ex.Raw) || !finite(ex.Feat) {
			delete(c.Examples, k)
		}
	}
	c.Features = c.Features || features
	return &c
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// saveCache writes the cache atomically (temporary file, then rename).
func saveCache(path string, c *cacheFile) error {
	if path == "" {
		return nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(c); err != nil {
		return err
	}
	return writeFileAtomic(path, buf.Bytes())
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// ReadCache returns the examples of an EmbedImages cache, by path (an
// empty map when the file is missing, corrupt or of another version).
func ReadCache(path string) map[string]Example {
	return loadCache(path, false).Examples
}
