package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/mqtt"
)

// AskStatus sends the fleet command to a running daemon (for `edged fleet
// status` while the daemon holds the store): it publishes on
// <base>/cmd/fleet and waits for <base>/reply/<id>, base being
// "<prefix>/<device>". action is ActionStatus or ActionResync. The
// connection o is opened and closed here.
func AskStatus(ctx context.Context, o PahoOptions, base, action string) (Status, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	id := "fleet-" + hex.EncodeToString(idb[:])
	if o.ClientID == "" {
		o.ClientID = "edged-cli-" + id
	}
	po := paho.NewClientOptions().AddBroker(o.Broker).SetClientID(o.ClientID).
		SetUsername(o.Username).SetPassword(o.Password).SetConnectTimeout(o.Timeout).SetCleanSession(true)
	if o.TLS != nil {
		po.SetTLSConfig(o.TLS)
	}
	c := paho.NewClient(po)
	if tok := c.Connect(); !tok.WaitTimeout(o.Timeout) || tok.Error() != nil {
		return Status{}, fmt.Errorf("connect to %s: %v", o.Broker, tok.Error())
	}
	defer c.Disconnect(100)
	replies := make(chan []byte, 1)
	tok := c.Subscribe(base+"/reply/"+id, 1, func(_ paho.Client, m paho.Message) {
		select {
		case replies <- append([]byte(nil), m.Payload()...):
		default:
		}
	})
	if !tok.WaitTimeout(o.Timeout) || tok.Error() != nil {
		return Status{}, fmt.Errorf("subscribe to the reply: %v", tok.Error())
	}
	req, _ := json.Marshal(CommandRequest{ID: id, Action: action})
	if tok := c.Publish(base+"/cmd/fleet", 1, false, req); !tok.WaitTimeout(o.Timeout) || tok.Error() != nil {
		return Status{}, fmt.Errorf("send the fleet command: %v", tok.Error())
	}
	select {
	case <-ctx.Done():
		return Status{}, fmt.Errorf("no reply from %s: %w", base, ctx.Err())
	case b := <-replies:
		var r struct {
			OK     bool             `json:"ok"`
			Result Status           `json:"result"`
			Error  *mqtt.ReplyError `json:"error"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return Status{}, fmt.Errorf("reply: %w", err)
		}
		if !r.OK {
			if r.Error == nil {
				return Status{}, fmt.Errorf("the daemon refused the fleet command")
			}
			return Status{}, fmt.Errorf("%s: %s", r.Error.Code, r.Error.Message)
		}
		return r.Result, nil
	}
}
