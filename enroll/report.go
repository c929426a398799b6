package enroll

import (
	"fmt"
	"sort"
	"strings"

	"github.com/edged-dev/edged/store"
)

// PersonCount counts one person's stored vectors of another backbone than
// the active (target) one.
type PersonCount struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// From lists the backbones the counted vectors belong to.
	From []string `json:"from"`
	// Samples and Negatives ("this face is not the person") counted.
	Samples   int `json:"samples"`
	Negatives int `json:"negatives,omitempty"`
	// Current is how many of the person's samples are of the target
	// backbone: 0 means the person is not recognised at all meanwhile.
	Current int `json:"current"`
}

// LoadReport says what LoadGallery loaded and what it left out.
type LoadReport struct {
	// Backbone is the active backbone: only its vectors were loaded.
	Backbone string `json:"backbone"`
	// People, Samples and Negatives loaded into the gallery.
	People    int `json:"people"`
	Samples   int `json:"samples"`
	Negatives int `json:"negatives"`
	// Experience counts the experience faces loaded (their own clusters).
	Experience int `json:"experience,omitempty"`
	// Reembeddable lists, per person, the samples and negatives of another
	// backbone that have a face crop: Reembed converts them.
	Reembeddable []PersonCount `json:"reembeddable,omitempty"`
	// NoCrop lists, per person, those without a crop: they can never be
	// used with this backbone; the person must be enrolled again.
	NoCrop []PersonCount `json:"no_crop,omitempty"`
	// HeadIgnored is the id of the active head when it was trained for
	// another backbone (HeadBackbone): it is not applied, matching uses
	// the identity.
	HeadIgnored  string `json:"head_ignored,omitempty"`
	HeadBackbone string `json:"head_backbone,omitempty"`
	// ClustersRestored counts the people whose missing stored clusters
	// were written back.
	ClustersRestored int `json:"clusters_restored,omitempty"`
	// Warnings are problems that did not stop the load.
	Warnings []string `json:"warnings,omitempty"`
}

// Messages are the report's user-facing lines (one per person left out,
// the ignored head, warnings); none when everything was loaded.
func (r LoadReport) Messages() []string {
	var out []string
	for _, p := range r.Reembeddable {
		out = append(out, fmt.Sprintf("%s: %s of the %s backbone not used with %s until they are re-embedded from their stored face crops (edged run does it at start, on a writable store)%s",
			p.Name, items(p.Samples, p.Negatives), strings.Join(p.From, ", "), r.Backbone, meanwhile(p)))
	}
	for _, p := range r.NoCrop {
		out = append(out, NoCropMessage(p, r.Backbone))
	}
	if r.HeadIgnored != "" {
		out = append(out, fmt.Sprintf("fine-tuned head %s was trained on %s embeddings and is not used with %s: matching uses the identity until a head is trained for %s",
			r.HeadIgnored, r.HeadBackbone, r.Backbone, r.Backbone))
	}
	return append(out, r.Warnings...)
}

// NoCropMessage tells the user that a person's vectors of another backbone
// cannot be re-embedded for target, and what to do about it.
func NoCropMessage(p PersonCount, target string) string {
	from := strings.Join(p.From, " or ")
	var parts []string
	if p.Samples > 0 {
		parts = append(parts, fmt.Sprintf("%s no face crop (enrolled before crops were kept or with store.keep_crops: false) and cannot be used with %s: re-enroll with edged enroll --name %q PHOTO... (or set model.backbone back to %s)%s",
			plural(p.Samples, "sample has", "samples have"), target, p.Name, from, meanwhile(p)))
	}
	if p.Negatives > 0 {
		parts = append(parts, fmt.Sprintf("%s (\"this is not %s\" feedback) of the %s backbone %s no face crop and no longer apply with %s (give the feedback again if the mistake recurs)",
			plural(p.Negatives, "negative sample", "negative samples"), p.Name, from, plural2(p.Negatives, "has", "have"), target))
	}
	return p.Name + ": " + strings.Join(parts, "; ")
}

func meanwhile(p PersonCount) string {
	if p.Samples == 0 {
		return ""
	}
	if p.Current == 0 {
		return fmt.Sprintf("; until then %s is not recognised", p.Name)
	}
	return fmt.Sprintf("; meanwhile %s is recognised from %s", p.Name, plural(p.Current, "other sample", "other samples"))
}

func items(samples, negatives int) string {
	switch {
	case negatives == 0:
		return plural(samples, "sample", "samples")
	case samples == 0:
		return plural(negatives, "negative sample", "negative samples")
	}
	return plural(samples, "sample", "samples") + " and " + plural(negatives, "negative sample", "negative samples")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func plural2(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// tally sorts stored vectors into those of the target backbone and those
// of another, with or without a crop, per person.
type tally struct {
	target   string
	order    []store.Person // by name
	current  map[string]int
	withCrop map[string]*PersonCount
	noCrop   map[string]*PersonCount
}

func newTally(target string, people []store.Person) *tally {
	return &tally{target: target, order: people, current: map[string]int{},
		withCrop: map[string]*PersonCount{}, noCrop: map[string]*PersonCount{}}
}

// sample counts s and reports whether it is of the target backbone.
func (t *tally) sample(s store.Sample) bool {
	if s.BackboneID() == t.target {
		t.current[s.PersonID]++
		return true
	}
	t.other(s.PersonID, s.BackboneID(), s.HasCrop).Samples++
	return false
}

// negative counts n and reports whether it is of the target backbone.
func (t *tally) negative(n store.Negative) bool {
	if n.BackboneID() == t.target {
		return true
	}
	t.other(n.PersonID, n.BackboneID(), n.HasCrop).Negatives++
	return false
}

func (t *tally) other(person, backbone string, hasCrop bool) *PersonCount {
	m := t.noCrop
	if hasCrop {
		m = t.withCrop
	}
	pc := m[person]
	if pc == nil {
		pc = &PersonCount{ID: person}
		m[person] = pc
	}
	if i := sort.SearchStrings(pc.From, backbone); i == len(pc.From) || pc.From[i] != backbone {
		pc.From = append(pc.From, "")
		copy(pc.From[i+1:], pc.From[i:])
		pc.From[i] = backbone
	}
	return pc
}

// lists returns the counts of other backbones with and without crops, in
// the people's order (by name), with names and current counts filled in.
func (t *tally) lists() (withCrop, noCrop []PersonCount) {
	for _, p := range t.order {
		if pc := t.withCrop[p.ID]; pc != nil {
			pc.Name, pc.Current = p.Name, t.current[p.ID]
			withCrop = append(withCrop, *pc)
		}
		if pc := t.noCrop[p.ID]; pc != nil {
			pc.Name, pc.Current = p.Name, t.current[p.ID]
			noCrop = append(noCrop, *pc)
		}
	}
	return withCrop, noCrop
}
