package eval

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// LFWPair is one pair of the LFW View 2 protocol: two image paths relative
// to the images directory (Name/Name_NNNN.jpg), whether they show the same
// person, and the fold (0-based).
type LFWPair struct {
	A, B string
	Same bool
	Fold int
}

// ParseLFWPairs reads an LFW pairs file: a header "FOLDS<TAB>N" (or just
// "N" for one set), then for each fold N matched pairs "name n1 n2" and N
// mismatched pairs "name1 n1 name2 n2". Fields may be separated by any
// white space; blank lines are ignored.
func ParseLFWPairs(r io.Reader) ([]LFWPair, error) {
	sc := bufio.NewScanner(r)
	lineNo := 0
	var header []string
	for sc.Scan() {
		lineNo++
		if header = strings.Fields(sc.Text()); len(header) > 0 {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	folds, perClass := 1, 0
	var err error
	switch len(header) {
	case 1:
		perClass, err = strconv.Atoi(header[0])
	case 2:
		if folds, err = strconv.Atoi(header[0]); err == nil {
			perClass, err = strconv.Atoi(header[1])
		}
	default:
		err = fmt.Errorf("want FOLDS N")
	}
	if err != nil || folds < 1 || perClass < 1 {
		return nil, fmt.Errorf("pairs header line %d %q: want \"FOLDS<TAB>N\" with positive numbers", lineNo, strings.Join(header, " "))
	}
	want := folds * 2 * perClass
	pairs := make([]LFWPair, 0, want)
	for sc.Scan() {
		lineNo++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		i := len(pairs)
		if i >= want {
			return nil, fmt.Errorf("pairs line %d: more pairs than the header's %d", lineNo, want)
		}
		p := LFWPair{Fold: i / (2 * perClass)}
		wantSame := i%(2*perClass) < perClass
		switch {
		case len(f) == 3 && wantSame:
			a, errA := lfwImage(f[0], f[1])
			b, errB := lfwImage(f[0], f[2])
			if errA != nil || errB != nil {
				return nil, fmt.Errorf("pairs line %d: bad image number in %q", lineNo, sc.Text())
			}
			p.A, p.B, p.Same = a, b, true
		case len(f) == 4 && !wantSame:
			a, errA := lfwImage(f[0], f[1])
			b, errB := lfwImage(f[2], f[3])
			if errA != nil || errB != nil {
				return nil, fmt.Errorf("pairs line %d: bad image number in %q", lineNo, sc.Text())
			}
			p.A, p.B = a, b
		default:
			kind := "a matched pair (name n1 n2)"
			if !wantSame {
				kind = "a mismatched pair (name1 n1 name2 n2)"
			}
			return nil, fmt.Errorf("pairs line %d %q: want %s", lineNo, sc.Text(), kind)
		}
		pairs = append(pairs, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(pairs) != want {
		return nil, fmt.Errorf("pairs file has %d pairs, the header announces %d (%d folds x 2 x %d)", len(pairs), want, folds, perClass)
	}
	return pairs, nil
}

func lfwImage(name, num string) (string, error) {
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || strings.ContainsAny(name, `/\`) || name == ".." {
		return "", fmt.Errorf("bad image %q %q", name, num)
	}
	return filepath.Join(name, fmt.Sprintf("%s_%04d.jpg", name, n)), nil
}
