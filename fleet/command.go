package fleet

import (
	"context"

	"github.com/edged-dev/edged/mqtt"
)

// The MQTT "fleet" command, registered by the daemon on its router:
//
//	router.Handle("fleet", mqtt.Command(sync.Command))
//
// Request {"id": "r1"} or {"id": "r1", "action": "status" | "resync"};
// the reply's result is the Status (schema docs/schema/fleet/status.json).

// Command actions.
const (
	ActionStatus = "status" // the default
	ActionResync = "resync" // re-read every local person, republish every record
)

// CommandRequest is the fleet command's request.
type CommandRequest struct {
	ID     string `json:"id"`
	Action string `json:"action,omitempty"`
}

// Validate implements mqtt.Request.
func (r CommandRequest) Validate(mqtt.Limits) error {
	switch r.Action {
	case "", ActionStatus, ActionResync:
		return nil
	}
	return mqtt.Errorf(mqtt.CodeInvalidField, "action %q: want status or resync", r.Action)
}

// Command serves the fleet command: the status, after queueing a resync
// when asked.
func (s *Sync) Command(_ context.Context, r CommandRequest) (Status, error) {
	if r.Action == ActionResync {
		s.Resync()
	}
	return s.Status()
}

// CommandOff is the fleet command of a device without a fleet: it answers
// "unavailable".
func CommandOff(context.Context, CommandRequest) (Status, error) {
	return Status{}, mqtt.Errorf(mqtt.CodeUnavailable, "this device is in no fleet (fleet.name)")
}

var _ mqtt.Request = CommandRequest{}
