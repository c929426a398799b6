package store

// PersonSummary is a person with the number of their samples, clusters
// and negatives (`edged people list`).
type PersonSummary struct {
	Person
	Samples   int `json:"samples"`
	Clusters  int `json:"clusters"`
	Negatives int `json:"negatives"`
}

// PersonDetail is a person with everything stored about them (`edged
// people show`): samples, clusters (as computed at the last enrollment)
// and negatives.
type PersonDetail struct {
	Person
	Samples   []Sample
	Clusters  Clusters
	Negatives []Negative
}

// Summaries returns every person with their counts, sorted by name, in
// one transaction.
func (s *Store) Summaries() ([]PersonSummary, error) {
	var out []PersonSummary
	err := s.View(func(tx *Tx) error {
		ps, err := tx.People()
		if err != nil {
			return err
		}
		for _, p := range ps {
			s := PersonSummary{Person: p}
			if s.Samples, err = tx.SampleCount(p.ID); err != nil {
				return err
			}
			cl, err := tx.Clusters(p.ID)
			if err != nil {
				return err
			}
			s.Clusters = len(cl.Clusters)
			ns, err := tx.Negatives(p.ID)
			if err != nil {
				return err
			}
			s.Negatives = len(ns)
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// Detail returns the person with the id, else the name (FindPerson), and
// everything stored about them, in one transaction.
func (s *Store) Detail(idOrName string) (PersonDetail, error) {
	var d PersonDetail
	err := s.View(func(tx *Tx) error {
		p, err := tx.FindPerson(idOrName)
		if err != nil {
			return err
		}
		d.Person = p
		if d.Samples, err = tx.Samples(p.ID); err != nil {
			return err
		}
		if d.Clusters, err = tx.Clusters(p.ID); err != nil {
			return err
		}
		d.Negatives, err = tx.Negatives(p.ID)
		return err
	})
	return d, err
}

// SampleCount returns the number of a person's samples.
func (s *Store) SampleCount(personID string) (n int, err error) {
	err = s.View(func(tx *Tx) error { n, err = tx.SampleCount(personID); return err })
	return n, err
}
