package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"image"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTimestampJSON(t *testing.T) {
	loc := time.FixedZone("CEST", 2*3600)
	ts := At(time.Date(2024, 5, 1, 14, 0, 0, 123456789, loc))
	b, err := json.Marshal(ts)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `"2024-05-01T12:00:00.123Z"` {
		t.Errorf("got %s", b)
	}
	var back Timestamp
	if err := json.Unmarshal(b, &back); err != nil || !back.Equal(ts.Time) {
		t.Errorf("round trip: %v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`"yesterday"`), &back); err == nil {
		t.Error("bad time accepted")
	}
	if _, err := json.Marshal(At(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))); err == nil {
		t.Error("year 10000 marshalled")
	}
}

func TestNewEvent(t *testing.T) {
	now := At(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	cases := []struct {
		p      Payload
		topic  string
		retain bool
		typ    string
	}{
		{Recognized{Camera: "front", Track: 7, PersonID: "p1", Name: "Alice", Distance: 0.31, Confidence: 0.9, Box: BoxOf(image.Rect(10, 20, 110, 140)), Time: now, FirstSeen: now}, TopicRecognized, false, TypeRecognized},
		{Unknown{Camera: "front", Track: 8, UnknownID: "unknown-3", Distance: 0.8, Time: now}, TopicUnknown, false, TypeUnknown},
		{Enrolled{PersonID: "p1", Name: "Alice", Source: SourceImages, Time: now}, TopicEnrolled, false, TypeEnrolled},
		{Deleted{PersonID: "p1", Name: "Alice", Time: now}, TopicDeleted, false, TypeDeleted},
		{Finetune{JobID: "j", State: FinetuneProgress, Progress: 0.5, Time: now}, TopicFinetune, false, TypeFinetune},
		{Camera{Camera: "front", State: CameraDown, Reason: "eof", Time: now}, TopicCamera, false, TypeCamera},
		{PersonState{PersonID: "p1", Name: "Alice", Camera: "front", LastSeen: now}, "people/p1/state", true, TypePersonState},
		{CameraState{Camera: "front", Status: CameraUp, Time: now}, "cameras/front/state", true, TypeCameraState},
	}
	for _, tc := range cases {
		ev, err := NewEvent(tc.p)
		if err != nil {
			t.Fatalf("%T: %v", tc.p, err)
		}
		if ev.Topic != tc.topic || ev.Retain != tc.retain {
			t.Errorf("%T: topic %q retain %v", tc.p, ev.Topic, ev.Retain)
		}
		var m map[string]any
		if err := json.Unmarshal(ev.Payload, &m); err != nil {
			t.Fatal(err)
		}
		if m["type"] != tc.typ {
			t.Errorf("%T: type %v, want %s", tc.p, m["type"], tc.typ)
		}
		back, err := DecodeEvent(ev.Topic, ev.Payload)
		if err != nil {
			t.Fatalf("%T: decode: %v", tc.p, err)
		}
		// The decoded value equals the original with Type filled in, and
		// for events/... an event_id and this run's boot_id.
		want := reflect.ValueOf(tc.p)
		cp := reflect.New(want.Type()).Elem()
		cp.Set(want)
		cp.FieldByName("Type").SetString(tc.typ)
		if f := cp.FieldByName("EventID"); f.IsValid() {
			id := reflect.ValueOf(back).FieldByName("EventID").String()
			if len(id) != 26 || m["boot_id"] != BootID() {
				t.Errorf("%T: event_id %q, boot_id %v", tc.p, id, m["boot_id"])
			}
			f.SetString(id)
			cp.FieldByName("BootID").SetString(BootID())
		}
		if !reflect.DeepEqual(back, cp.Interface()) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", tc.p, back, cp.Interface())
		}
	}
	// An event keeps the id it has (a redelivery, a second NewEvent) and
	// gets a new one otherwise.
	a, _ := NewEvent(Identify(Camera{Camera: "c", State: CameraUp}))
	var first Camera
	_ = json.Unmarshal(a.Payload, &first)
	again, _ := NewEvent(first)
	other, _ := NewEvent(Camera{Camera: "c", State: CameraUp})
	if !bytes.Equal(a.Payload, again.Payload) || bytes.Equal(a.Payload, other.Payload) {
		t.Errorf("event ids: %s, %s, %s", a.Payload, again.Payload, other.Payload)
	}
	// Times are RFC 3339 milliseconds UTC inside payloads.
	ev, _ := NewEvent(Recognized{Camera: "c", Time: now, FirstSeen: now})
	if !strings.Contains(string(ev.Payload), `"time":"2024-05-01T12:00:00.000Z"`) {
		t.Errorf("payload %s", ev.Payload)
	}
	// A never-seen person omits last_seen.
	ev, _ = NewEvent(PersonState{PersonID: "p2", Name: "Bob"})
	if strings.Contains(string(ev.Payload), "last_seen") {
		t.Errorf("zero last_seen present: %s", ev.Payload)
	}
	// Topic-unsafe ids are refused.
	for _, p := range []Payload{PersonState{PersonID: "a/b"}, CameraState{Camera: "#"}, CameraState{Camera: ""}} {
		if _, err := NewEvent(p); !errors.Is(err, ErrTopic) {
			t.Errorf("%+v: err %v, want ErrTopic", p, err)
		}
	}
	if ev, err := ClearRetained(PersonStateTopic("p1")); err != nil || !ev.Retain || len(ev.Payload) != 0 {
		t.Errorf("clear: %+v %v", ev, err)
	}
	if p, err := DecodeEvent("people/p1/state", nil); p != nil || err != nil {
		t.Errorf("cleared state: %v %v", p, err)
	}
	if _, err := DecodeEvent("events/nope", []byte(`{}`)); err == nil {
		t.Error("unknown topic decoded")
	}
}

func TestCheckEventTopic(t *testing.T) {
	good := []string{"events/recognized", "people/01HX/state", "cameras/front door/state", "x"}
	bad := []string{"", "/events", "events/", "events//x", "events/+", "events/#", "cmd/enroll", "reply/r1", "availability", "a\x00b", "$SYS/x", "\xff"}
	for _, s := range good {
		if err := CheckEventTopic(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range bad {
		if err := CheckEventTopic(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if _, err := NewTopics("home/edged", "pi-1"); err != nil {
		t.Error(err)
	}
	for _, tc := range [][2]string{{"edged", ""}, {"edged", "a/b"}, {"a//b", "x"}, {"e+", "x"}} {
		if _, err := NewTopics(tc[0], tc[1]); err == nil {
			t.Errorf("NewTopics(%q, %q) accepted", tc[0], tc[1])
		}
	}
	tp, _ := NewTopics("", "kitchen")
	if tp.Reply("r1") != "edged/kitchen/reply/r1" || tp.CommandFilter() != "edged/kitchen/cmd/+" || tp.Availability() != "edged/kitchen/availability" {
		t.Errorf("topics %+v", tp)
	}
}

func TestMemOutbox(t *testing.T) {
	o := NewMemOutbox()
	for i := 0; i < 5; i++ {
		if _, err := o.Append(Event{Topic: TopicRecognized, Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-o.Notify():
	default:
		t.Error("no notify")
	}
	if _, err := o.Append(Event{Topic: "cmd/x"}); err == nil {
		t.Error("reserved topic appended")
	}
	p, _ := o.Pending(3)
	if len(p) != 3 || p[0].Seq != 1 || p[2].Seq != 3 {
		t.Fatalf("pending %+v", p)
	}
	_ = o.Ack(2)
	_ = o.Ack(2) // twice is fine
	p, _ = o.Pending(10)
	if len(p) != 4 || p[1].Seq != 3 {
		t.Fatalf("after ack %+v", p)
	}
}

func TestOptionsValidate(t *testing.T) {
	bad := []Options{
		{},
		{Broker: "http://x:1"},
		{Broker: "tcp://"},
		{Broker: "tcp://x:1", CAFile: "/ca.pem"},
		{Broker: "ssl://x:1", CertFile: "c.pem"},
		{Broker: "tcp://x:1", Password: "p"},
		{Broker: "tcp://x:1", Device: "a/b"},
		{Broker: "tcp://x:1", HomeAssistant: HomeAssistantOptions{Cameras: []string{"a+b"}}},
	}
	for _, o := range bad {
		if _, err := New(o, NewMemOutbox(), NewRouter(Limits{}, nil)); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: err %v, want ErrOptions", o, err)
		}
	}
	// Every problem is listed at once.
	_, err := New(Options{Broker: "tcp://x:1", Password: "p", Device: "a/b"}, NewMemOutbox(), NewRouter(Limits{}, nil))
	if err == nil || !strings.Contains(err.Error(), "password") || !strings.Contains(err.Error(), "device") {
		t.Errorf("err %v", err)
	}
	if _, err := New(Options{Broker: "ssl://x:1", CAFile: "/nonexistent/ca.pem"}, NewMemOutbox(), NewRouter(Limits{}, nil)); !errors.Is(err, ErrOptions) {
		t.Errorf("missing CA file: %v", err)
	}
	c, err := New(Options{Broker: "tcp://user:pw@x:1", Device: "d"}, NewMemOutbox(), NewRouter(Limits{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second close: %v", err)
	}
	if err := c.Start(); !errors.Is(err, ErrClosed) {
		t.Errorf("start after close: %v", err)
	}
	if got := redactURL("tcp://user:pw@x:1"); got != "tcp://x:1" {
		t.Errorf("redact %q", got)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for n := 1; n < 20; n++ {
		d := backoff(n, lo, hi)
		want := min(lo<<(n-1), hi)
		if n > 10 {
			want = hi
		}
		if d < want*8/10 || d > want*12/10 {
			t.Errorf("attempt %d: %v, want about %v", n, d, want)
		}
	}
}
