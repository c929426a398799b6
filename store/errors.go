package store

import (
	"errors"

	badger "github.com/dgraph-io/badger/v4"
)

// Sentinel errors. Callers test them with errors.Is; the store wraps them
// with context (the directory, the id).
var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store is closed")
	// ErrLocked is returned by Open when another process (usually a running
	// `edged run`) holds the database directory.
	ErrLocked = errors.New("database directory is in use by another process")
	// ErrCorrupt is returned by Open when the directory holds something that
	// is not a readable edged database. The store never recreates it.
	ErrCorrupt = errors.New("database is corrupt or not an edged database")
	// ErrNeedsRepair is returned by a read-only Open of a database left by
	// a crash (its write-ahead log has a torn tail) that it could not
	// repair: another process holds the directory, or the disk is too
	// full for the repair's writes. A read-write Open repairs it.
	ErrNeedsRepair = errors.New("database was not closed cleanly and needs a repair (a read-write open does it)")
	// ErrWrongKey is returned by Open when the encryption key does not match
	// the one the database was created with, or when a key is missing or
	// given for a database that is not encrypted.
	ErrWrongKey = errors.New("wrong encryption key")
	// ErrBadKey is returned when an encryption key is not 16, 24 or 32 bytes.
	ErrBadKey = errors.New("encryption key must be 16, 24 or 32 bytes (raw or hex)")
	// ErrSchemaTooNew is returned by Open when the database was written by a
	// newer edged whose schema this build does not know.
	ErrSchemaTooNew = errors.New("database schema is newer than this edged")
	// ErrReadOnly is returned by writes on a store opened read-only.
	ErrReadOnly = errors.New("store is opened read-only")
	// ErrDiskFull is returned by a write (and by a read-write Open) when
	// the file system holding the database has less than
	// Options.MinFreeBytes free. The write changed nothing; retry it once
	// space is freed. It is wrapped with the directory and the free and
	// needed byte counts.
	ErrDiskFull = errors.New("not enough free disk space for the database")

	// ErrPersonNotFound is returned when no person has the id or name.
	ErrPersonNotFound = errors.New("person not found")
	// ErrNameTaken is returned when another person already has the name
	// (names are unique, compared case-insensitively).
	ErrNameTaken = errors.New("name is already used by another person")
	// ErrInvalidName is returned for an empty or over-long name, or one with
	// control characters.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidEmbedding is returned for an empty embedding or one with a
	// NaN or infinite value.
	ErrInvalidEmbedding = errors.New("invalid embedding")
	// ErrSampleNotFound is returned when a person has no sample (or
	// negative sample) with the id.
	ErrSampleNotFound = errors.New("sample not found")
	// ErrHeadNotFound is returned when no head version has the id.
	ErrHeadNotFound = errors.New("head version not found")
	// ErrUnknownNotFound is returned when no unknown-face cluster has the id.
	ErrUnknownNotFound = errors.New("unknown face cluster not found")

	// ErrTxnTooBig is returned by a Tx write (and then by Update) when the
	// transaction holds more than Badger commits at once. It is Badger's own
	// sentinel, so a callback can recognise it on the write that failed,
	// return nil to commit what it has, and carry on in a new transaction.
	ErrTxnTooBig = badger.ErrTxnTooBig

	// ErrBackupFormat is returned by Restore for a file that is not an
	// edged backup, is truncated or fails its checksum.
	ErrBackupFormat = errors.New("not a valid edged backup")
	// ErrRestoreTarget is returned by Restore when the target directory
	// already holds data.
	ErrRestoreTarget = errors.New("restore target is not empty")
)
