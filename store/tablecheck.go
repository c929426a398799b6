package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// checkTables opens every table file of an unencrypted database the way
// Badger will, but in this goroutine under recover: Badger opens its
// tables in goroutines of its own, where some damage (an index length
// overwritten) panics and kills the whole process, which openBadger's
// recover cannot catch. A table that panics here gives ErrCorrupt naming
// it; errors are left to Badger (it skips a table whose checksum fails,
// and reports the rest). Encrypted tables need Badger's key registry:
// they are not checked.
func checkTables(dir string, encrypted bool, bo badger.Options) error {
	if encrypted {
		return nil
	}
	// Only the tables the MANIFEST lists: a table a compaction was
	// writing when the process was killed is an orphan Badger deletes at
	// open, not damage.
	fp, err := os.Open(filepath.Join(dir, "MANIFEST"))
	if err != nil {
		return nil
	}
	m, _, err := badger.ReplayManifestFile(fp, bo.ExternalMagicVersion, bo)
	_ = fp.Close()
	if err != nil || len(m.Tables) == 0 {
		return nil // Badger reports a bad manifest
	}
	// No key given: an encrypted database (whose key registry does not
	// read without one) is Badger's to refuse with ErrWrongKey.
	kr, err := badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: dir, ReadOnly: true})
	if err != nil {
		return nil
	}
	_ = kr.Close()
	for id, tm := range m.Tables {
		if tm.KeyID != 0 {
			continue // encrypted table
		}
		f := filepath.Join(dir, fmt.Sprintf("%06d.sst", id))
		if err := checkTable(f, tm.Compression); err != nil {
			return fmt.Errorf("%w: table %s is damaged (%v); restore a backup (edged restore)", ErrCorrupt, filepath.Base(f), err)
		}
	}
	return nil
}

func checkTable(path string, compression options.CompressionType) (err error) {
	mf, oerr := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if oerr != nil {
		return nil // Badger reports it
	}
	defer func() {
		if r := recover(); r != nil {
			msg := "panic"
			for _, l := range strings.Split(fmt.Sprint(r), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					msg = l // Badger's panic text goes on with a dump
					break
				}
			}
			err = fmt.Errorf("%s", msg)
			_ = mf.Close(-1)
		}
	}()
	t, terr := table.OpenTable(mf, table.Options{ReadOnly: true, BlockSize: 4 << 10, BloomFalsePositive: 0.01,
		ChkMode: options.NoVerification, Compression: compression})
	if terr != nil {
		_ = mf.Close(-1)
		return nil // Badger decides (a checksum mismatch is skipped)
	}
	_ = t.DecrRef()
	return nil
}
