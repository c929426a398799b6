package mqtt

import (
	"sync"
	"time"
)

// CommandLog remembers the first reply of each command with side effects
// (registered with Router.HandleOnce), by (command, id), so that the same
// command sent twice takes effect once: a repeat within Options.DedupTTL
// gets the first reply again, whatever its MQTT DUP flag (a broker does
// not pass that flag on to subscribers, and a client retrying after a
// lost reply sends a new message). The daemon passes a durable one (the
// store's, so repeats are recognised across restarts); MemCommandLog is
// the in-memory default.
//
// Only successful replies are remembered: a failed command changed
// nothing (the Service contract), so running it again is safe and may now
// succeed (after storage_full, say).
type CommandLog interface {
	// Reply returns the remembered reply of (command, id) and when it was
	// answered.
	Reply(command, id string) (reply []byte, at time.Time, found bool, err error)
	// Remember stores the reply unless one is stored already (the first
	// reply wins).
	Remember(command, id string, reply []byte, at time.Time) error
	// Prune forgets the replies answered before the time.
	Prune(before time.Time) (int, error)
}

// MemCommandLog is an in-memory CommandLog holding at most a fixed number
// of replies (the oldest are forgotten first). It is not durable: repeats
// are only recognised until the process ends.
type MemCommandLog struct {
	mu    sync.Mutex
	max   int
	byKey map[string]memReply
	order []string // keys, oldest first
}

type memReply struct {
	reply []byte
	at    time.Time
}

var _ CommandLog = (*MemCommandLog)(nil)

// NewMemCommandLog returns an empty log of at most max replies (<= 0:
// 4096, a day of commands for a busy installation).
func NewMemCommandLog(max int) *MemCommandLog {
	if max <= 0 {
		max = 4096
	}
	return &MemCommandLog{max: max, byKey: map[string]memReply{}}
}

func dedupKey(command, id string) string { return command + "\x00" + id }

// Reply implements CommandLog.
func (l *MemCommandLog) Reply(command, id string) ([]byte, time.Time, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.byKey[dedupKey(command, id)]
	return r.reply, r.at, ok, nil
}

// Remember implements CommandLog.
func (l *MemCommandLog) Remember(command, id string, reply []byte, at time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := dedupKey(command, id)
	if _, ok := l.byKey[k]; ok {
		return nil
	}
	l.byKey[k] = memReply{reply: append([]byte(nil), reply...), at: at}
	l.order = append(l.order, k)
	for len(l.order) > l.max {
		delete(l.byKey, l.order[0])
		l.order = l.order[1:]
	}
	return nil
}

// Prune implements CommandLog.
func (l *MemCommandLog) Prune(before time.Time) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	keep := l.order[:0]
	for _, k := range l.order {
		if l.byKey[k].at.Before(before) {
			delete(l.byKey, k)
			n++
			continue
		}
		keep = append(keep, k)
	}
	l.order = keep
	return n, nil
}

// Len is the number of replies remembered.
func (l *MemCommandLog) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}
