package service

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edged-dev/edged/mqtt"
)

// TestEnrollRecordCommitsWithTheEnrollment: the reply of an enroll with an
// id is written into the store's command table in the enrollment's own
// transaction, byte for byte what the MQTT client publishes, so a crash
// between the commit and the client's own record cannot make a repeat
// enroll twice.
func TestEnrollRecordCommitsWithTheEnrollment(t *testing.T) {
	f := newFixture(t)
	res, err := f.svc.Enroll(context.Background(), mqtt.EnrollRequest{ID: "dup1", Name: "Alice", Images: images(1, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(mqtt.Reply{ID: "dup1", OK: true, Result: res})
	raw, _, found, err := NewCommandLog(f.st).Reply(mqtt.CmdEnroll, "dup1")
	if err != nil || !found || !bytes.Equal(raw, want) {
		t.Fatalf("command record %q, %v, %v; want %q", raw, found, err, want)
	}
	// A refused enrollment leaves no record (a repeat may succeed).
	if _, err := f.svc.Enroll(context.Background(), mqtt.EnrollRequest{ID: "bad", PersonID: "nobody", Images: images(2)}); err == nil {
		t.Fatal("an enrollment for nobody was accepted")
	}
	if _, _, found, _ := NewCommandLog(f.st).Reply(mqtt.CmdEnroll, "bad"); found {
		t.Fatal("a refused enrollment left a command record")
	}
}

// TestEnrollSentTwiceOverMQTT is the case end to end with the real
// service, enroller and store behind the embedded broker: the same enroll
// with "id":"dup1" sent twice (no DUP flag) gave one person with 6 samples;
// now one person with 3 samples and two identical replies, and a third
// copy after a restart of the MQTT client (same store) gets the same
// reply too.
func TestEnrollSentTwiceOverMQTT(t *testing.T) {
	f := newFixture(t)
	b, err := mqtt.StartBrokerWith(mqtt.BrokerOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	user, pass := b.Credentials()
	start := func() *mqtt.Client {
		c, err := mqtt.New(mqtt.Options{Broker: b.URL(), Username: user, Password: pass, Device: "pi",
			ClientID: fmt.Sprintf("edged-%d", time.Now().UnixNano()), BackoffMin: 50 * time.Millisecond,
			HomeAssistant: mqtt.HomeAssistantOptions{Disabled: true}, Dedup: NewCommandLog(f.st)},
			NewStoreOutbox(f.st), mqtt.NewServiceRouter(f.svc, mqtt.Limits{}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	tp := c.Topics()

	var mu sync.Mutex
	var replies [][]byte
	got := make(chan struct{}, 4)
	user2 := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("user"))
	if tok := user2.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer user2.Disconnect(100)
	if tok := user2.Subscribe(tp.Reply("dup1"), 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		replies = append(replies, bytes.Clone(m.Payload()))
		mu.Unlock()
		got <- struct{}{}
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	req, _ := json.Marshal(map[string]any{"id": "dup1", "name": "Dup", "images": []string{b64(photo(3, 0)), b64(photo(3, 1)), b64(photo(3, 2))}})
	send := func() {
		t.Helper()
		if tok := user2.Publish(tp.Command(mqtt.CmdEnroll), 1, false, req); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		select {
		case <-got:
		case <-time.After(20 * time.Second):
			t.Fatal("no reply")
		}
	}
	send()
	send()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = start()
	defer c.Close()
	send()

	ps, err := f.st.People()
	if err != nil || len(ps) != 1 {
		t.Fatalf("people %+v, %v: want one", ps, err)
	}
	if n, _ := f.st.Samples(ps[0].ID); len(n) != 3 {
		t.Fatalf("%d samples, want 3", len(n))
	}
	mu.Lock()
	defer mu.Unlock()
	for i, r := range replies {
		if !bytes.Equal(r, replies[0]) {
			t.Errorf("reply %d differs:\n%s\n%s", i, r, replies[0])
		}
	}
	if !bytes.Contains(replies[0], []byte(`"ok":true`)) {
		t.Errorf("reply %s", replies[0])
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
