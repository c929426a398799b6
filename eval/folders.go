package eval

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FolderImage is one file of a folder-per-person image set.
type FolderImage struct {
	Person string // the folder name
	Path   string
}

// ScanFolders lists a folder-per-person image set, the one scanner of
// `edged eval fewshot` and `edged train`: every sub-folder of dir (hidden
// ones aside) is a person, its .jpg, .jpeg and .png files their images.
// People come in name order, each one's images sorted by name; people
// without an image are left out. An error when there is no image at all.
func ScanFolders(dir string) ([]FolderImage, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []FolderImage
	for _, e := range entries { // os.ReadDir sorts by name
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var imgs []FolderImage
		for _, f := range files {
			switch strings.ToLower(filepath.Ext(f.Name())) {
			case ".jpg", ".jpeg", ".png":
				if !f.IsDir() {
					imgs = append(imgs, FolderImage{Person: e.Name(), Path: filepath.Join(dir, e.Name(), f.Name())})
				}
			}
		}
		sort.Slice(imgs, func(i, j int) bool { return imgs[i].Path < imgs[j].Path })
		out = append(out, imgs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no JPEG or PNG images in the sub-folders of %s", dir)
	}
	return out, nil
}

// WithMinImages keeps the images of the people who have n or more.
func WithMinImages(imgs []FolderImage, n int) []FolderImage {
	count := map[string]int{}
	for _, im := range imgs {
		count[im.Person]++
	}
	var out []FolderImage
	for _, im := range imgs {
		if count[im.Person] >= n {
			out = append(out, im)
		}
	}
	return out
}
