package gallery_test

import (
	"fmt"

	"github.com/edged-dev/edged/gallery"
)

// Two people who look somewhat alike, and faces to decide about. Real
// embeddings have 128 values; three are enough to show the rule.
func Example() {
	g := gallery.New(gallery.Options{Threshold: 0.35})
	err := g.Load([]gallery.Person{
		{ID: "p1", Name: "Alice", Samples: []gallery.Sample{{ID: "s1", Embedding: []float32{1, 0, 0}, Quality: 0.9}}},
		{ID: "p2", Name: "Bob", Samples: []gallery.Sample{{ID: "s2", Embedding: []float32{0.9, 0.44, 0}, Quality: 0.9}}},
	})
	if err != nil {
		panic(err)
	}
	for _, face := range [][]float32{
		{0.99, -0.1, 0.05}, // Alice
		{0.97, 0.22, 0},    // halfway between them: a stranger who resembles both
		{0, 0, 1},          // nobody
	} {
		m, err := g.Match(face)
		if err != nil {
			panic(err)
		}
		if m.Known {
			fmt.Printf("%s (distance %.2f, margin %.2f)\n", m.Name, m.Distance, m.Margin)
		} else {
			fmt.Printf("unknown: %s (nearest %s at %.2f)\n", m.Reason, m.Name, m.Distance)
		}
	}
	// Output:
	// Alice (distance 0.11, margin 0.44)
	// unknown: ambiguous (nearest Alice at 0.22)
	// unknown: too far (nearest Alice at 1.41)
}

// The user says a recognised face was not Alice: the look-alike is no longer
// accepted, Alice still is.
func ExampleGallery_AddNegative() {
	g := gallery.New(gallery.Options{Threshold: 0.4})
	_ = g.Load([]gallery.Person{{ID: "p1", Name: "Alice", Samples: []gallery.Sample{{ID: "s1", Embedding: []float32{1, 0, 0}}}}})
	lookalike := []float32{0.95, 0.3, 0}
	m, _ := g.Match(lookalike)
	fmt.Println("before:", m.Known, m.Name)
	_ = g.AddNegative("p1", gallery.Sample{ID: "n1", Embedding: lookalike})
	m, _ = g.Match(lookalike)
	fmt.Println("after:", m.Known, m.Reason)
	m, _ = g.Match([]float32{1, -0.1, 0})
	fmt.Println("Alice:", m.Known, m.Name)
	// Output:
	// before: true Alice
	// after: false marked as not this person
	// Alice: true Alice
}
