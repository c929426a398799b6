package store

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Options configures Open. The zero value of every field except Dir means
// "the default" (see DefaultOptions).
type Options struct {
	// Dir is the database directory. It is created when it does not exist;
	// an existing directory must be empty or hold an edged database.
	Dir string `yaml:"dir"`
	// EncryptionKey turns on encryption at rest (AES, 16, 24 or 32 bytes).
	// A database created with a key can only be opened with the same key;
	// see LoadKey for reading it from a file or the environment.
	EncryptionKey []byte `yaml:"-"`
	// ReadOnly opens the database without taking the writer's lock, so
	// several readers may share it; it still fails while a writer (the
	// daemon) holds it.
	ReadOnly bool `yaml:"read_only"`
	// NoSync skips the fsync after each commit. Default false: a committed
	// enrollment or outbox event survives a power cut, at the cost of one
	// fsync per commit (see BenchmarkEnrollCommit).
	NoSync bool `yaml:"no_sync"`
	// GCInterval is the period of the value-log GC run by RunGC. Default 10m.
	GCInterval time.Duration `yaml:"gc_interval"`
	// GCDiscardRatio is the fraction of a value-log file that must be garbage
	// before GC rewrites it. Default 0.5.
	GCDiscardRatio float64 `yaml:"gc_discard_ratio"`
	// CacheSize bounds Badger's block cache (and its index cache when
	// encrypted), in bytes. Default 16 MiB: edge devices are small.
	CacheSize int64 `yaml:"cache_size"`
	// MinFreeBytes is the free space (for an unprivileged user) the file
	// system holding Dir must have before every write, and before a
	// read-write Open; below it writes fail with ErrDiskFull and change
	// nothing. Badger writes its value log, memtable WALs and tables
	// through mmap into sparse files, and touching a page the full file
	// system cannot back kills the whole process with SIGBUS instead of
	// returning an error: this reserve keeps those pages backed. Default
	// DefaultMinFreeBytes (128 MiB); negative turns the check off.
	MinFreeBytes int64 `yaml:"min_free_bytes"`
	// OutboxMaxBytes bounds the outbox (events waiting for the MQTT
	// broker), counting their stored keys and values. An append that
	// would pass it drops the oldest events first, in the same commit:
	// events of events/ topics, and retained states superseded by a newer
	// one of the same topic; the newest retained state of each topic is
	// kept. Dropped events are counted (OutboxStats) and logged once per
	// outage. Default 64 MiB: about a day of events of a busy camera
	// (~700 bytes each, one per second), and half of the default
	// MinFreeBytes, so a broker outage alone cannot eat the disk reserve.
	// Negative: no bound.
	OutboxMaxBytes int64 `yaml:"outbox_max_bytes"`
	// OutboxMaxAge drops events that waited longer, oldest first, with
	// the same rules (PruneOutbox, run by RunGC). Default 7 days: an event
	// older than that is history, not news, for a subscriber. Negative: no
	// bound.
	OutboxMaxAge time.Duration `yaml:"outbox_max_age"`
	// Logger receives the store's and Badger's warnings. Default: discard.
	Logger *slog.Logger `yaml:"-"`
}

// DefaultOptions returns the options for a database in dir with every
// default filled in.
func DefaultOptions(dir string) Options {
	o := Options{Dir: dir}
	o.fill()
	return o
}

// DefaultMinFreeBytes is the default Options.MinFreeBytes, 128 MiB: what
// Badger may still write through mmap after a check passed (a commit is at
// most 15% of a memtable, but it can start a flush or a compaction), for
// the sizes Open uses:
//   - 64 MiB: the current value-log file (mapped sparse at 2 x the 64 MiB
//     ValueLogFileSize, written up to 64 MiB before the next one starts);
//   - 16 MiB: the two memtables' WALs (each mapped sparse at 2 x the 8 MiB
//     MemTableSize, written up to 8 MiB);
//   - 8 MiB: the level-0 table a memtable flush writes (also mmap);
//   - 40 MiB of margin: compactions (they write the new tables before
//     deleting the old ones), the MANIFEST, the discard stats, and other
//     processes taking space between two checks.
const DefaultMinFreeBytes = 128 << 20

// Outbox bounds (Options.OutboxMaxBytes, Options.OutboxMaxAge).
const (
	DefaultOutboxMaxBytes = 64 << 20
	DefaultOutboxMaxAge   = 7 * 24 * time.Hour
)

func (o *Options) fill() {
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = DefaultMinFreeBytes
	}
	if o.OutboxMaxBytes == 0 {
		o.OutboxMaxBytes = DefaultOutboxMaxBytes
	}
	if o.OutboxMaxAge == 0 {
		o.OutboxMaxAge = DefaultOutboxMaxAge
	}
	if o.GCInterval <= 0 {
		o.GCInterval = 10 * time.Minute
	}
	if o.GCDiscardRatio <= 0 || o.GCDiscardRatio >= 1 {
		o.GCDiscardRatio = 0.5
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 16 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// KeyEnv is the environment variable that holds the encryption key itself
// (raw or hex); it overrides a key file.
const KeyEnv = "EDGED_STORE_KEY"

// LoadKey returns the encryption key: envValue when it is not empty (the
// value of $EDGED_STORE_KEY), else the contents of keyFile when it is set,
// else nil (no encryption). A key is 16, 24 or 32 raw bytes, or twice as
// many hex digits; surrounding white space is ignored.
func LoadKey(keyFile, envValue string) ([]byte, error) {
	if envValue != "" {
		k, err := parseKey([]byte(envValue))
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", KeyEnv, err)
		}
		return k, nil
	}
	if keyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	k, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("key file %q: %w", keyFile, err)
	}
	return k, nil
}

func parseKey(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if n := len(s); n == 32 || n == 48 || n == 64 {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	// Raw keys are used as they are (white space trimmed only at the ends
	// of a text file would corrupt a binary key, so try the untrimmed bytes
	// first).
	for _, k := range [][]byte{b, []byte(s)} {
		if validKeyLen(len(k)) {
			return append([]byte(nil), k...), nil
		}
	}
	return nil, fmt.Errorf("%w: got %d bytes", ErrBadKey, len(s))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
