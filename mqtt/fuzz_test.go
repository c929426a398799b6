package mqtt

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
)

var knownCodes = map[string]bool{
	CodeBadJSON: true, CodeUnknownField: true, CodeMissingField: true, CodeInvalidField: true,
	CodeTooLarge: true, CodeBadImage: true, CodeNoFace: true, CodePoorQuality: true,
	CodeUnknownPerson: true, CodeUnknownCluster: true, CodeUnknownCamera: true,
	CodeUnknownCommand: true, CodeConflict: true, CodeBusy: true, CodeTimeout: true,
	CodeUnavailable: true, CodeStorageFull: true, CodeInternal: true,
}

func fuzzSeeds(f *testing.F) {
	for _, c := range badCommands(f) {
		if len(c.payload) < 4096 {
			f.Add(c.command, []byte(c.payload))
		}
	}
	png := b64(testPNG(f, 40, 40))
	for _, s := range []struct{ cmd, payload string }{
		{CmdEnroll, `{"id":"e1","name":"Alice","images":["` + png + `"]}`},
		{CmdEnroll, `{"id":"e2","person_id":"p1","camera":"front","next_faces":3,"timeout_s":5}`},
		{CmdEnroll, `{"id":"e3","name":"Bob","from_unknown":"unknown-2"}`},
		{CmdFeedback, `{"id":"f","person_id":"p1","sample_id":"s1","correct_person_id":"p2"}`},
		{CmdList, `{"id":"l","unknown":true}`},
	} {
		f.Add(s.cmd, []byte(s.payload))
	}
}

// FuzzDecodeCommand: any message on any command topic gets a well-formed
// reply with a known code, on a topic-safe reply level, and never panics.
func FuzzDecodeCommand(f *testing.F) {
	fuzzSeeds(f)
	svc := newFakeService()
	// Small image limits keep each execution fast: the fuzzer targets the
	// decoding logic, not how long a 24-megapixel decode takes.
	r := NewServiceRouter(svc, Limits{MaxPayload: 1 << 16, MaxImageSide: 1024, MaxPixels: 1 << 20}, nil)
	f.Fuzz(func(t *testing.T, command string, payload []byte) {
		call := r.Decode(command, payload)
		to := call.ReplyTo()
		if to != UnreadableID && CheckSegment(to) != nil {
			t.Fatalf("reply level %q is not topic-safe", to)
		}
		if call.Err() == nil {
			if to != call.ID || call.ID == "" {
				t.Fatalf("decoded call with id %q replies to %q", call.ID, to)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(payload, &m); err != nil {
				t.Fatalf("accepted a payload that is not a JSON object: %v", err)
			}
		} else if !knownCodes[call.Err().Code()] {
			t.Fatalf("unknown code %q", call.Err().Code())
		}
		rep := r.Run(context.Background(), call)
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatalf("reply does not marshal: %v", err)
		}
		var back struct {
			ID    string          `json:"id"`
			OK    *bool           `json:"ok"`
			Res   json.RawMessage `json:"result"`
			Error *ReplyError     `json:"error"`
		}
		if err := json.Unmarshal(b, &back); err != nil || back.OK == nil {
			t.Fatalf("reply %s: %v", b, err)
		}
		if *back.OK != (back.Error == nil) || *back.OK != (back.Res != nil) {
			t.Fatalf("reply envelope inconsistent: %s", b)
		}
		if back.Error != nil && (!knownCodes[back.Error.Code] || back.Error.Message == "") {
			t.Fatalf("reply error %+v", back.Error)
		}
	})
}

// FuzzPeekID: the best-effort id reader of oversized payloads never panics
// and only returns topic-safe ids as usable.
func FuzzPeekID(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, _ string, payload []byte) {
		id, ok := peekID(payload)
		if ok && CheckSegment(id) != nil {
			t.Fatalf("peekID returned unsafe id %q as usable", id)
		}
		env, err := scanEnvelope(payload)
		if err == nil && env.idSet && env.idErr == nil && len(payload) < peekIDWindow {
			// On a valid object, both readers agree.
			if !ok || id != env.id {
				t.Fatalf("peekID %q/%v, scanEnvelope %q", id, ok, env.id)
			}
		}
	})
}

// FuzzDecodeEvent: event payloads from the wire decode without panics and
// survive a marshal round trip.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []struct{ topic, payload string }{
		{TopicRecognized, `{"type":"recognized","camera":"front","track":3,"person_id":"p1","name":"A","distance":0.3,"confidence":0.9,"box":{"x":1,"y":2,"w":3,"h":4},"time":"2024-05-01T12:00:00.123Z","first_seen":"2024-05-01T12:00:00Z"}`},
		{TopicUnknown, `{"type":"unknown","camera":"c","track":1,"unknown_id":"unknown-1","distance":0.9,"time":"2024-05-01T12:00:00.123+02:00"}`},
		{TopicFinetune, `{"type":"finetune","job_id":"j","state":"done","progress":1,"loss":0.2,"metrics":{"a":1}}`},
		{"people/p1/state", `{"type":"person_state","person_id":"p1","name":"A","last_seen":"2024-05-01T12:00:00Z"}`},
		{"cameras/c/state", `{"camera":"c","status":"up"}`},
	} {
		f.Add(s.topic, []byte(s.payload))
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		p, err := DecodeEvent(topic, payload)
		if err != nil || p == nil {
			return
		}
		b, err := json.Marshal(p)
		if err != nil {
			return // e.g. a year beyond 9999
		}
		q, err := DecodeEvent(topic, b)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", b, err)
		}
		// Marshal forces the type field; compare the rest.
		pv, qv := reflect.ValueOf(&p).Elem().Elem(), reflect.ValueOf(q)
		pc := reflect.New(pv.Type()).Elem()
		pc.Set(pv)
		pc.FieldByName("Type").Set(qv.FieldByName("Type"))
		if !reflect.DeepEqual(pc.Interface(), q) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", pc.Interface(), q)
		}
	})
}
