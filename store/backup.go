package store

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Backup file format (all integers big-endian):
//
//	"EDGEDBAK" | format version (1 byte) | flags (1 byte, bit 0: encrypted)
//	| schema version (4) | nonce base (8, encrypted only)
//	then chunks: length (4, high bit set on the last chunk) | payload
//
// The chunks carry Badger's own backup stream. A payload is the data and a
// CRC-32C of (chunk index, last flag, data) in a plain backup, or the AES-GCM
// sealed data (nonce = nonce base | chunk index, additional data = chunk
// index and last flag) in an encrypted one, under the store's key: a backup
// of an encrypted store is encrypted too. The last-chunk flag makes a
// truncated file an error instead of a silently smaller database.
const (
	backupMagic     = "EDGEDBAK"
	backupVersion   = 1
	flagEncrypted   = 1
	backupChunkSize = 64 << 10
	lastChunkBit    = 1 << 31
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Backup writes a full, consistent backup of the database to w.
func (s *Store) Backup(w io.Writer) error {
	v, err := s.Version()
	if err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	cw, err := newChunkWriter(w, s.opts.EncryptionKey, v)
	if err != nil {
		return err
	}
	if _, err := s.db.Backup(cw, 0); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return cw.Close()
}

// BackupFile writes a backup (Backup) to the file path and returns its
// size. It writes next to the target and renames, so a failed backup never
// leaves a truncated file under the final name.
func (s *Store) BackupFile(path string) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	if err := s.Backup(tmp); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// Restore creates the database in opts.Dir from a backup read from r. The
// directory must not exist or be empty (ErrRestoreTarget otherwise): restore
// never merges into or overwrites a database. opts.EncryptionKey decrypts
// an encrypted backup and encrypts the new database. The data is loaded
// into a temporary directory next to opts.Dir, checked by opening it, then
// renamed into place, so a failed restore leaves nothing behind. Less than
// opts.MinFreeBytes free (before or while loading) gives ErrDiskFull.
func Restore(r io.Reader, opts Options) error {
	opts.fill()
	if opts.Dir == "" {
		return errors.New("restore: no directory given")
	}
	if entries, err := os.ReadDir(opts.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("restore into %q: %w (move it away first)", opts.Dir, ErrRestoreTarget)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore into %q: %w", opts.Dir, err)
	}
	if err := checkSpace(opts.Dir, opts.MinFreeBytes); err != nil {
		return fmt.Errorf("restore into %q: %w", opts.Dir, err)
	}
	cr, err := newChunkReader(r, opts.EncryptionKey)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// Badger loads through mmap like any write: stop reading the backup
	// (Load then fails and the temporary directory is removed) once the
	// file system gets too full, instead of dying of SIGBUS.
	cr.check = func() error { return checkSpace(opts.Dir, opts.MinFreeBytes) }
	if cr.schema > targetSchema {
		return fmt.Errorf("restore: %w: backup has schema %d, this build knows %d", ErrSchemaTooNew, cr.schema, targetSchema)
	}
	parent := filepath.Dir(filepath.Clean(opts.Dir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(opts.Dir)+".restore-")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	tmpOpts := opts
	tmpOpts.Dir, tmpOpts.ReadOnly, tmpOpts.NoSync = tmp, false, true
	// The store's own sizes, so that MinFreeBytes covers the load too.
	db, err := openBadger(badgerOptions(tmp, tmpOpts))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := db.Load(cr, 256); err != nil {
		_ = db.Close()
		if errors.Is(err, ErrBackupFormat) || errors.Is(err, ErrWrongKey) {
			return fmt.Errorf("restore: %w", err)
		}
		if errors.Is(err, ErrDiskFull) || errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("restore into %q: %w", opts.Dir, classify(err))
		}
		return fmt.Errorf("restore: %w: %v", ErrBackupFormat, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !cr.done {
		return fmt.Errorf("restore: %w: truncated (no final chunk)", ErrBackupFormat)
	}
	// Check the result is a store this build can open (and migrate it).
	st, err := Open(tmpOpts)
	if err != nil {
		return fmt.Errorf("restore: restored data does not open: %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.Remove(opts.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp, opts.Dir); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	ok = true
	return nil
}

type chunkWriter struct {
	w     *bufio.Writer
	aead  cipher.AEAD
	nonce [12]byte
	buf   []byte
	index uint32
	err   error
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return cipher.NewGCM(block)
}

func newChunkWriter(w io.Writer, key []byte, schema uint32) (*chunkWriter, error) {
	cw := &chunkWriter{w: bufio.NewWriter(w), buf: make([]byte, 0, backupChunkSize)}
	hdr := []byte(backupMagic)
	hdr = append(hdr, backupVersion, 0)
	hdr = binary.BigEndian.AppendUint32(hdr, schema)
	if len(key) > 0 {
		var err error
		if cw.aead, err = newAEAD(key); err != nil {
			return nil, err
		}
		hdr[len(backupMagic)+1] = flagEncrypted
		if _, err := rand.Read(cw.nonce[:8]); err != nil {
			return nil, err
		}
		hdr = append(hdr, cw.nonce[:8]...)
	}
	if _, err := cw.w.Write(hdr); err != nil {
		return nil, err
	}
	return cw, nil
}

func chunkAD(index uint32, last bool) []byte {
	ad := binary.BigEndian.AppendUint32(nil, index)
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && cw.err == nil {
		k := min(len(p), backupChunkSize-len(cw.buf))
		cw.buf = append(cw.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(cw.buf) == backupChunkSize {
			cw.flush(false)
		}
	}
	return n, cw.err
}

func (cw *chunkWriter) flush(last bool) {
	if cw.err != nil {
		return
	}
	ad := chunkAD(cw.index, last)
	var payload []byte
	if cw.aead != nil {
		binary.BigEndian.PutUint32(cw.nonce[8:], cw.index)
		payload = cw.aead.Seal(nil, cw.nonce[:], cw.buf, ad)
	} else {
		crc := crc32.Update(crc32.Checksum(ad, castagnoli), castagnoli, cw.buf)
		payload = binary.BigEndian.AppendUint32(append([]byte(nil), cw.buf...), crc)
	}
	l := uint32(len(payload))
	if last {
		l |= lastChunkBit
	}
	var lb [4]byte
	binary.BigEndian.PutUint32(lb[:], l)
	if _, err := cw.w.Write(lb[:]); err != nil {
		cw.err = err
		return
	}
	if _, err := cw.w.Write(payload); err != nil {
		cw.err = err
		return
	}
	cw.buf = cw.buf[:0]
	cw.index++
}

func (cw *chunkWriter) Close() error {
	cw.flush(true)
	if cw.err != nil {
		return cw.err
	}
	return cw.w.Flush()
}

type chunkReader struct {
	r      *bufio.Reader
	aead   cipher.AEAD
	nonce  [12]byte
	schema uint32
	buf    []byte
	index  uint32
	done   bool
	check  func() error // called before each chunk; nil: nothing to check
}

func newChunkReader(r io.Reader, key []byte) (*chunkReader, error) {
	cr := &chunkReader{r: bufio.NewReader(r)}
	hdr := make([]byte, len(backupMagic)+6)
	if _, err := io.ReadFull(cr.r, hdr); err != nil || string(hdr[:len(backupMagic)]) != backupMagic {
		return nil, fmt.Errorf("%w: no edged backup header", ErrBackupFormat)
	}
	if v := hdr[len(backupMagic)]; v != backupVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrBackupFormat, v)
	}
	encrypted := hdr[len(backupMagic)+1]&flagEncrypted != 0
	cr.schema = binary.BigEndian.Uint32(hdr[len(backupMagic)+2:])
	switch {
	case encrypted && len(key) == 0:
		return nil, fmt.Errorf("%w: the backup is encrypted and no key was given", ErrWrongKey)
	case !encrypted && len(key) > 0:
		// A plain backup restores into an encrypted store: fine.
	case encrypted:
		var err error
		if cr.aead, err = newAEAD(key); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(cr.r, cr.nonce[:8]); err != nil {
			return nil, fmt.Errorf("%w: truncated header", ErrBackupFormat)
		}
	}
	return cr, nil
}

func (cr *chunkReader) Read(p []byte) (int, error) {
	for len(cr.buf) == 0 {
		if cr.done {
			return 0, io.EOF
		}
		if err := cr.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, cr.buf)
	cr.buf = cr.buf[n:]
	return n, nil
}

func (cr *chunkReader) next() error {
	if cr.check != nil {
		if err := cr.check(); err != nil {
			return err
		}
	}
	var lb [4]byte
	if _, err := io.ReadFull(cr.r, lb[:]); err != nil {
		return fmt.Errorf("%w: truncated (chunk %d)", ErrBackupFormat, cr.index)
	}
	l := binary.BigEndian.Uint32(lb[:])
	last := l&lastChunkBit != 0
	l &^= lastChunkBit
	if l > backupChunkSize+64 {
		return fmt.Errorf("%w: chunk %d too large", ErrBackupFormat, cr.index)
	}
	payload := make([]byte, l)
	if _, err := io.ReadFull(cr.r, payload); err != nil {
		return fmt.Errorf("%w: truncated (chunk %d)", ErrBackupFormat, cr.index)
	}
	ad := chunkAD(cr.index, last)
	if cr.aead != nil {
		binary.BigEndian.PutUint32(cr.nonce[8:], cr.index)
		data, err := cr.aead.Open(nil, cr.nonce[:], payload, ad)
		if err != nil {
			if cr.index == 0 {
				return fmt.Errorf("%w: cannot decrypt the backup", ErrWrongKey)
			}
			return fmt.Errorf("%w: chunk %d fails authentication", ErrBackupFormat, cr.index)
		}
		cr.buf = data
	} else {
		if len(payload) < 4 {
			return fmt.Errorf("%w: chunk %d too short", ErrBackupFormat, cr.index)
		}
		data, sum := payload[:len(payload)-4], binary.BigEndian.Uint32(payload[len(payload)-4:])
		if crc32.Update(crc32.Checksum(ad, castagnoli), castagnoli, data) != sum {
			return fmt.Errorf("%w: chunk %d fails its checksum", ErrBackupFormat, cr.index)
		}
		cr.buf = data
	}
	cr.index++
	cr.done = last
	return nil
}
