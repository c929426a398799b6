package gallery

import "errors"

var (
	// ErrDimension is returned for an embedding whose length differs from
	// the gallery's (the first vector added fixes it).
	ErrDimension = errors.New("embedding has the wrong dimension")
	// ErrInvalidEmbedding is returned for an empty, all-zero or non-finite
	// embedding.
	ErrInvalidEmbedding = errors.New("invalid embedding")
	// ErrPersonNotFound is returned for an id the gallery does not hold.
	ErrPersonNotFound = errors.New("person not in the gallery")
	// ErrNoSamples is returned when a person is added without samples.
	ErrNoSamples = errors.New("person has no samples")
)
