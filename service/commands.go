package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/mqtt"
	"github.com/edged-dev/edged/store"
)

// CommandLog is the store's command table as an mqtt.CommandLog: the
// first reply of every command with side effects is kept across restarts,
// so a repeat of (command, id) is answered without running again.
type CommandLog struct{ st *store.Store }

var _ mqtt.CommandLog = (*CommandLog)(nil)

// NewCommandLog returns the command log of st (mqtt.Options.Dedup).
func NewCommandLog(st *store.Store) *CommandLog { return &CommandLog{st: st} }

// Reply implements mqtt.CommandLog.
func (l *CommandLog) Reply(command, id string) ([]byte, time.Time, bool, error) {
	r, found, err := l.st.CommandReply(command, id)
	return r.Reply, r.Time, found, err
}

// Remember implements mqtt.CommandLog.
func (l *CommandLog) Remember(command, id string, reply []byte, at time.Time) error {
	_, err := l.st.RememberCommand(command, id, reply, at)
	return err
}

// Prune implements mqtt.CommandLog.
func (l *CommandLog) Prune(before time.Time) (int, error) { return l.st.PruneCommands(before) }

// rememberEnroll makes the enrollment of request id write its reply into
// the command table in the enrollment's own transaction: a crash after the
// commit and before the MQTT client remembers the reply cannot make a
// repeat of the request enroll twice. The reply is byte for byte the one
// the client publishes (the same Reply marshalled).
func rememberEnroll(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return enroll.WithCommitHook(ctx, func(tx *store.Tx, r enroll.Result) error {
		raw, err := json.Marshal(mqtt.Reply{ID: id, OK: true, Result: enrollResult(r)})
		if err != nil {
			return err
		}
		_, err = tx.RememberCommand(mqtt.CmdEnroll, id, raw, time.Now())
		return err
	})
}

// enrollResult is the result of an ok enroll reply.
func enrollResult(r enroll.Result) mqtt.EnrollResult {
	return mqtt.EnrollResult{PersonID: r.PersonID, Name: r.Name, Created: r.Created,
		SamplesAdded: r.Accepted, SamplesTotal: r.Samples}
}
