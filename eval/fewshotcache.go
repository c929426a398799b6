package eval

import (
	"bufio"
	"encoding/gob"
	"errors"
	"os"

	"github.com/edged-dev/edged/face"
)

// cacheFile is the on-disk form of a faceCache (FewShotOptions.CacheFile).
type cacheFile struct {
	Faces map[[32]byte]cachedFaces
	Embs  map[[32]byte]face.Embedding
}

type cachedFaces struct {
	Faces []face.Face
	Err   string
}

func (c *faceCache) load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var cf cacheFile
	if err := gob.NewDecoder(bufio.NewReader(f)).Decode(&cf); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range cf.Faces {
		var e error
		if v.Err != "" {
			e = errors.New(v.Err)
		}
		c.faces[k] = faceResult{faces: v.Faces, err: e}
	}
	for k, v := range cf.Embs {
		c.embs[k] = v
	}
	return nil
}

func (c *faceCache) save(path string) error {
	c.mu.Lock()
	cf := cacheFile{Faces: make(map[[32]byte]cachedFaces, len(c.faces)), Embs: c.embs}
	for k, v := range c.faces {
		cf.Faces[k] = cachedFaces{Faces: v.faces}
		if v.err != nil {
			cf.Faces[k] = cachedFaces{Faces: v.faces, Err: v.err.Error()}
		}
	}
	defer c.mu.Unlock()
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := gob.NewEncoder(w).Encode(cf); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
