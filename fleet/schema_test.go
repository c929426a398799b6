package fleet

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The schemas in docs/schema/fleet/ describe what the Go types write: a
// record, a member and a status with every field set validate, and a
// field the schema does not know fails (so the two cannot drift apart).
// The validator covers the subset of JSON Schema the files use.

type schemaDoc struct {
	dir  string
	docs map[string]map[string]any
}

func loadSchemas(t *testing.T) *schemaDoc {
	dir := filepath.Join("..", "docs", "schema", "fleet")
	sd := &schemaDoc{dir: dir, docs: map[string]map[string]any{}}
	for _, f := range []string{"person.json", "member.json", "status.json", "event.fleet_sync.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		sd.docs[f] = m
	}
	return sd
}

func (sd *schemaDoc) validate(file string, instance any) []string {
	var errs []string
	sd.check(file, sd.docs[file], instance, "$", &errs)
	return errs
}

func (sd *schemaDoc) resolve(file, ref string) (string, map[string]any) {
	target, frag, _ := strings.Cut(ref, "#")
	if target != "" {
		file = target
	}
	node := sd.docs[file]
	for _, part := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if part == "" {
			continue
		}
		node = node[part].(map[string]any)
	}
	return file, node
}

func (sd *schemaDoc) check(file string, s map[string]any, v any, path string, errs *[]string) {
	fail := func(format string, a ...any) { *errs = append(*errs, path+": "+fmt.Sprintf(format, a...)) }
	if ref, ok := s["$ref"].(string); ok {
		f, target := sd.resolve(file, ref)
		sd.check(f, target, v, path, errs)
	}
	if c, ok := s["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		fail("want const %v, got %v", c, v)
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || fmt.Sprint(e) == fmt.Sprint(v)
		}
		if !found {
			fail("want one of %v, got %v", enum, v)
		}
	}
	switch s["type"] {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			fail("want an object")
			return
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				fail("missing required %q", r)
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					fail("property %q is not in the schema", k)
				}
				continue
			}
			sd.check(file, ps, obj[k], path+"."+k, errs)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			fail("want an array")
			return
		}
		if n, ok := s["minItems"].(float64); ok && float64(len(arr)) < n {
			fail("fewer than %v items", n)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, it := range arr {
				sd.check(file, items, it, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			fail("want a string")
			return
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
		if n, ok := s["maxLength"].(float64); ok && float64(utf8.RuneCountInString(str)) > n {
			fail("longer than %v", n)
		}
		if n, ok := s["minLength"].(float64); ok && float64(utf8.RuneCountInString(str)) < n {
			fail("shorter than %v", n)
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				fail("not RFC 3339: %v", err)
			}
		}
		if s["contentEncoding"] == "base64" {
			if _, err := base64.StdEncoding.DecodeString(str); err != nil {
				fail("not base64")
			}
		}
	case "integer", "number":
		n, ok := v.(float64)
		if !ok {
			fail("want a number")
			return
		}
		if s["type"] == "integer" && n != float64(int64(n)) {
			fail("want an integer")
		}
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("below %v", m)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("want a boolean")
		}
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func toAny(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func fullRecord() *Record {
	at := HLC{Wall: 1_718_000_000_123, Logical: 2, Device: "front-door"}
	s := Sample{ID: "01HZZZSAMPLE0000000000000A", HLC: at, Quality: 0.87, Source: "file", Created: time.Now(), Crop: true,
		Vecs: []Vec{{Backbone: "dlib", HLC: at, Data: []float32{0.5, -1}}, {Backbone: "mobilefacenet", HLC: at, Data: []float32{1, 2}}}}
	n := s
	n.ID = "01HZZZNEG00000000000000000"
	return &Record{V: 1, Fleet: "home", ID: "01HZZZPERSON00000000000000", Created: time.Now(),
		Name:      Name{Value: "Alice", HLC: at, Prev: HLC{Wall: 1_700_000_000_000, Device: "garage"}},
		Deleted:   &Tomb{HLC: HLC{Wall: 1_600_000_000_000, Device: "back"}, Expires: 1_700_000_000_000},
		Samples:   []Sample{s},
		Negatives: []Sample{n},
		Removed:   []Tomb{{ID: "01HZZZGONE0000000000000000", HLC: at, Expires: 1_800_000_000_000}},
		Clusters:  []Clusters{{Backbone: "mobilefacenet", Head: "h1", HLC: at, Items: []Cluster{{Centroid: []float32{1, 0}, Spread: 0.2, Count: 1, Samples: []string{s.ID}}}}},
	}
}

func TestSchemas(t *testing.T) {
	sd := loadSchemas(t)
	rec := Normalize(fullRecord())
	if errs := sd.validate("person.json", toAny(t, rec)); len(errs) > 0 {
		t.Errorf("person record:\n%s", strings.Join(errs, "\n"))
	}
	minimal := &Record{V: 1, Fleet: "home", ID: "P", Name: Name{Value: "Bob", HLC: HLC{Wall: 1, Device: "a"}}}
	if errs := sd.validate("person.json", toAny(t, Normalize(minimal))); len(errs) > 0 {
		t.Errorf("minimal record:\n%s", strings.Join(errs, "\n"))
	}
	m := Member{V: 1, Fleet: "home", Device: "front-door", Backbone: "mobilefacenet", Version: "1.2.3", Online: true, People: 3,
		ShareCrops: true, Seen: time.Now().UTC(), HLC: HLC{Wall: 5, Device: "front-door"}}
	if errs := sd.validate("member.json", toAny(t, m)); len(errs) > 0 {
		t.Errorf("member:\n%s", strings.Join(errs, "\n"))
	}
	st := Status{Fleet: "home", Device: "a", Backbone: "mobilefacenet", Encrypted: true, KeyID: "0123456789abcdef", ShareCrops: true, Running: true,
		Members: []Member{m}, People: []PersonStatus{{ID: "P", Name: "Bob", Local: "Bob (2)", Version: "1.0.a", Origin: "a", Deleted: true,
			Samples: 2, Usable: 1, Pending: true, Skipped: "dlib"}},
		PeopleLive: 1, PeopleDeleted: 1, PendingPublish: 1, LastSync: time.Now(), LastPublish: time.Now(), LastReceive: time.Now(),
		ConflictsResolved: 1, Applied: 2, Refused: 3}
	if errs := sd.validate("status.json", toAny(t, st)); len(errs) > 0 {
		t.Errorf("status:\n%s", strings.Join(errs, "\n"))
	}
	ev := SyncEvent("home", Change{PersonID: "P", Name: "Bob", OldName: "Rob", Kind: ChangeRenamed, Origin: "a", Version: "1.0.a",
		SamplesAdded: 1, SamplesRemoved: 1, SamplesSkipped: 1, Samples: 2})
	var payload any
	if err := json.Unmarshal(ev.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	if errs := sd.validate("event.fleet_sync.json", payload); len(errs) > 0 {
		t.Errorf("fleet_sync event %s:\n%s", ev.Payload, strings.Join(errs, "\n"))
	}
	for field, bad := range map[string]any{"change": "moved", "event_id": "not-a-ulid", "surprise": 1} {
		broken := toAny(t, payload).(map[string]any)
		broken[field] = bad
		if errs := sd.validate("event.fleet_sync.json", broken); len(errs) == 0 {
			t.Errorf("a fleet_sync event with %s %v passed the schema", field, bad)
		}
	}
	noID := toAny(t, payload).(map[string]any)
	delete(noID, "event_id")
	if errs := sd.validate("event.fleet_sync.json", noID); len(errs) == 0 {
		t.Error("a fleet_sync event without event_id passed the schema")
	}
	// Drift: a field the schema does not have is caught.
	extra := toAny(t, rec).(map[string]any)
	extra["surprise"] = 1
	if errs := sd.validate("person.json", extra); len(errs) == 0 {
		t.Error("an unknown field passed the schema")
	}
}
