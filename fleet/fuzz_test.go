package fleet

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeRecord: any payload on a person topic is refused with an
// error or decoded into a valid record; merging it with a real record and
// back through JSON never panics and stays idempotent.
//
//	go test ./fleet -run '^$' -fuzz '^FuzzDecodeRecord$' -fuzztime 1m
func FuzzDecodeRecord(f *testing.F) {
	good, _ := marshalRecord(Normalize(fullRecord()))
	f.Add(good)
	f.Add([]byte(`{"v":1,"fleet":"home","id":"P","name":{"value":"A","hlc":"1.0.a"}}`))
	f.Add([]byte(`{"v":1,"fleet":"home","id":"P","name":{"value":"A","hlc":"1.0.a"},"deleted":{"hlc":"2.0.b","expires":3}}`))
	f.Add([]byte("EDF1"))
	f.Add([]byte(`null`))
	f.Add(bytes.Repeat([]byte("["), 1000))
	s := &Sync{opts: Options{Name: "home"}, clock: NewClock("me", func() time.Time { return time.UnixMilli(1_800_000_000_000) }, time.Hour)}
	s.opts.fill()
	s.codec, _ = newCodec(nil)
	s.topics = NewTopics("edged", "home")
	base := Normalize(fullRecord())
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, id := range []string{"P", base.ID} {
			r, err := s.decodeRecord(s.topics.Person(id), id, payload)
			if err != nil {
				if refusal(err) == "" {
					t.Fatalf("refusal without a reason: %v", err)
				}
				continue
			}
			if err := r.Validate(s.opts.limits()); err != nil {
				t.Fatalf("decoded record does not validate: %v", err)
			}
			m := Merge(base, r)
			if !Equal(Merge(m, r), m) || !Equal(Merge(r, base), m) {
				t.Fatal("merge not idempotent/commutative on a fuzzed record")
			}
			b, err := marshalRecord(m)
			if err != nil {
				t.Fatal(err)
			}
			back, err := unmarshalRecord(b)
			if err != nil || !Equal(back, m) {
				t.Fatalf("round trip: %v", err)
			}
			Compact(m, time.Now().UnixMilli())
		}
	})
}
