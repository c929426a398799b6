package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The command de-duplication table: the first reply to each command with
// side effects, by (command, request id), so that a command sent twice
// (a client retrying after a lost reply, a broker redelivering) takes
// effect once and gets the same reply again, across restarts too. Package
// mqtt decides what is remembered and for how long; package service
// writes the record of an enrollment in the enrollment's own transaction,
// so a crash cannot separate the effect from its record.

// CommandReply is a remembered reply.
type CommandReply struct {
	Reply []byte    `json:"reply"` // the reply message as published
	Time  time.Time `json:"time"`  // when the command was answered
}

// validSegment is what a command name or request id may be in a key: 1-128
// bytes (an MQTT request id's limit), no '/' and no control characters.
func validSegment(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '/' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func commandKey(command, id string) ([]byte, error) {
	if !validSegment(command) || !validSegment(id) {
		return nil, fmt.Errorf("command record %q/%q: invalid command or id", command, id)
	}
	return []byte(prefixCommand + command + "/" + id), nil
}

// RememberCommand stores the reply of (command, id) unless one is stored
// already: the first reply wins. It reports whether it stored this one.
func (tx *Tx) RememberCommand(command, id string, reply []byte, at time.Time) (bool, error) {
	if err := tx.checkWritable(); err != nil {
		return false, err
	}
	key, err := commandKey(command, id)
	if err != nil {
		return false, err
	}
	if _, err := tx.txn.Get(key); err == nil {
		return false, nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return false, err
	}
	b, err := json.Marshal(CommandReply{Reply: reply, Time: at.UTC()})
	if err != nil {
		return false, err
	}
	return true, tx.txn.Set(key, b)
}

// CommandReply returns the remembered reply of (command, id).
func (tx *Tx) CommandReply(command, id string) (CommandReply, bool, error) {
	key, err := commandKey(command, id)
	if err != nil {
		return CommandReply{}, false, err
	}
	b, err := tx.get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return CommandReply{}, false, nil
	}
	if err != nil {
		return CommandReply{}, false, err
	}
	var r CommandReply
	if err := json.Unmarshal(b, &r); err != nil {
		return CommandReply{}, false, fmt.Errorf("%w: command record %s: %v", ErrCorrupt, key, err)
	}
	return r, true, nil
}

// RememberCommand is Tx.RememberCommand in its own transaction.
func (s *Store) RememberCommand(command, id string, reply []byte, at time.Time) (stored bool, err error) {
	err = s.Update(func(tx *Tx) error { stored, err = tx.RememberCommand(command, id, reply, at); return err })
	return stored, err
}

// CommandReply is Tx.CommandReply in its own transaction.
func (s *Store) CommandReply(command, id string) (r CommandReply, found bool, err error) {
	err = s.View(func(tx *Tx) error { r, found, err = tx.CommandReply(command, id); return err })
	return r, found, err
}

// PruneCommands deletes the records of commands answered before the time
// (their de-duplication window has passed) and returns how many.
func (s *Store) PruneCommands(before time.Time) (int, error) {
	var old [][]byte
	err := s.View(func(tx *Tx) error {
		return tx.scan([]byte(prefixCommand), true, func(k, v []byte) error {
			var r CommandReply
			if json.Unmarshal(v, &r) != nil || r.Time.Before(before) {
				old = append(old, k) // unreadable records go too
			}
			return nil
		})
	})
	if err != nil || len(old) == 0 {
		return 0, err
	}
	n := 0
	for len(old) > 0 {
		batch := old[:min(len(old), 1000)]
		old = old[len(batch):]
		if err := s.Update(func(tx *Tx) error {
			for _, k := range batch {
				if err := tx.txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return n, err
		}
		n += len(batch)
	}
	return n, nil
}

// CommandCount returns how many command records are kept.
func (s *Store) CommandCount() (int, error) {
	n := 0
	err := s.View(func(tx *Tx) error {
		return tx.scan([]byte(prefixCommand), false, func(_, _ []byte) error { n++; return nil })
	})
	return n, err
}
