// Package store is edged's database, on Badger v4: people, their samples
// (raw backbone embeddings, with optional face chips and crops), clusters
// and negative samples, fine-tuned head versions, unknown-face clusters and
// the event outbox the MQTT side drains. It is pure Go.
//
// # Usage
//
//	st, err := store.Open(store.DefaultOptions(dir)) // creates or opens, migrates
//	if err != nil { ... } // ErrLocked, ErrWrongKey, ErrCorrupt, ErrSchemaTooNew
//	defer st.Close()
//	go st.RunGC(ctx) // value-log GC every Options.GCInterval until ctx ends or Close
//
//	err = st.Update(func(tx *store.Tx) error { // one transaction: all or nothing
//		p := store.Person{Name: "Alice"}
//		if err := tx.PutPerson(&p); err != nil { return err }
//		return tx.AddSample(&store.Sample{PersonID: p.ID, Embedding: raw, Source: store.SourceFile}, nil)
//	})
//
// Package enroll builds enrollments on top of Tx so that a person, their
// samples, their clusters and the "enrolled" outbox event commit in one
// transaction.
//
// # Backbones and crops
//
// Every raw vector (Sample, Negative, Unknown) and every HeadVersion
// records the backbone network it belongs to ("dlib", "mobilefacenet");
// vectors of different backbones are never compared. Records written
// before backbones were recorded have none, which reads as LegacyBackbone
// ("dlib"): BackboneOf and the BackboneID methods apply that rule.
//
// A sample may keep its face crop (AddSampleWith, Images.Crop; Crop reads
// it): the face aligned to face.CropTemplate, PNG-encoded, from which any
// backbone's chip can be cut again. Crops are what lets package enroll's
// Reembed move the gallery to another backbone; the store only provides
// its primitives: staged vectors (PutStaged, EachStaged, DeleteStaged), the
// in-progress record (PutReembedState, ReembedState) and the switch of one
// item (SetSampleEmbedding, SetNegativeEmbedding, DeleteClusters). A
// transaction too big for Badger gives ErrTxnTooBig on the write that did
// not fit.
//
// # Schema
//
// The key schema is documented in keys.go; its version is SchemaVersion,
// stored under m/schema. Open runs the migrations from the stored version to
// SchemaVersion, each in one transaction with the new version number, and
// refuses a database from a newer edged (ErrSchemaTooNew). Version 2 (backbone
// ids, crops, re-embedding) rewrites nothing: its number keeps an older
// edged from reading other backbones' vectors as dlib ones.
//
// # Durability and safety
//
// Commits are fsynced (Options.NoSync turns that off). Open never creates a
// database over a directory it cannot read: a non-empty directory without a
// Badger manifest, a damaged manifest or a Badger database without an edged
// schema version give ErrCorrupt. Another process holding the directory (the
// daemon, while the CLI tries to open it) gives ErrLocked; CLI commands on
// the store therefore need the daemon stopped, or go through its MQTT
// commands. With Options.EncryptionKey the data is encrypted at rest
// (AES, Badger's key registry); the wrong key gives ErrWrongKey. Backup
// writes a checksummed (encrypted, when the store is) stream; Restore loads
// it into a new directory only.
//
// # Degraded mode, crash repair and bounds
//
// Below Options.MinFreeBytes a read-write Open still succeeds: Badger is
// opened read-only (it writes nothing then), reads work, every write gives
// ErrDiskFull, and Status reports StatusStorageFull. Status and every
// write measure the space again and switch the store to read-write once
// it is back. A read-only Open of a database left by a crash repairs it
// (a read-write open and close, when no other process holds the
// directory) and Repaired says what it did. The outbox is bounded by
// Options.OutboxMaxBytes and OutboxMaxAge: the oldest events the broker
// has not taken are dropped (counted in OutboxStats, logged once per
// outage), never the newest retained state of a topic. The command table
// (RememberCommand, CommandReply, PruneCommands) keeps the first reply of
// each command with side effects for package mqtt's de-duplication.
package store
