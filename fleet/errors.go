package fleet

import "errors"

// Sentinel errors. Callers test them with errors.Is; they are wrapped with
// the topic, person or field concerned.
var (
	// ErrOptions is returned by New for a missing or invalid option.
	ErrOptions = errors.New("fleet: invalid options")
	// ErrClosed is returned by Sync methods after Close.
	ErrClosed = errors.New("fleet: closed")
	// ErrBadKey is returned by LoadKey and New for a fleet key that is not
	// 32 bytes (raw, or 64 hex digits).
	ErrBadKey = errors.New("fleet: key must be 32 bytes (raw or 64 hex digits)")

	// The reasons a record from the broker is refused. Each is counted in
	// edged_fleet_records_refused_total{reason} and logged once per topic
	// and reason; none stops the device.

	// ErrInvalid: the record decodes but breaks the format (bad id, empty
	// name, non-finite vector, a field out of range, another fleet's
	// topic).
	ErrInvalid = errors.New("fleet: invalid record")
	// ErrCorrupt: not a record at all (not JSON, truncated envelope).
	ErrCorrupt = errors.New("fleet: corrupt record")
	// ErrForged: the record does not authenticate with the fleet key (a
	// wrong key, tampered bytes, a copy moved to another topic, or a
	// plaintext record in a fleet that encrypts).
	ErrForged = errors.New("fleet: record does not authenticate with the fleet key")
	// ErrOversize: the payload or a list in it exceeds the bounds
	// (Options.MaxRecordBytes, MaxSamples, ...).
	ErrOversize = errors.New("fleet: record too large")
	// ErrClockSkew: the record's clock is further ahead of this device's
	// than Options.MaxClockSkew (a device with a wrong clock).
	ErrClockSkew = errors.New("fleet: record clock too far ahead")
	// ErrVersion: a record format this build does not know (a newer edged).
	ErrVersion = errors.New("fleet: unknown record version")
)

// refusal is the metric label of a refused record's error.
func refusal(err error) string {
	switch {
	case errors.Is(err, ErrForged):
		return "forged"
	case errors.Is(err, ErrOversize):
		return "oversize"
	case errors.Is(err, ErrClockSkew):
		return "clock_skew"
	case errors.Is(err, ErrVersion):
		return "version"
	case errors.Is(err, ErrCorrupt):
		return "corrupt"
	default:
		return "invalid"
	}
}
