package mqtt

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The JSON schemas in docs/schema/mqtt/ are generated from the Go types
// below plus the descriptions and constraints in this file, so they cannot
// drift: TestSchemas fails when a committed file differs from what the
// types produce. Regenerate with
//
//	go test ./mqtt -run TestSchemas -update
var updateSchemas = flag.Bool("update", false, "rewrite docs/schema/mqtt/*.json")

type schemaDoc struct {
	file  string
	title string
	desc  string
	typ   reflect.Type
	input bool // a request: additionalProperties false (the router rejects unknown fields)
}

var schemaDocs = []schemaDoc{
	{"event.recognized.json", "events/recognized", "A track was decided to be an enrolled person (one event per appearance). Topic <prefix>/<device>/events/recognized, QoS 1, not retained.", reflect.TypeFor[Recognized](), false},
	{"event.unknown.json", "events/unknown", "A track of good-quality faces matched nobody. Topic .../events/unknown, QoS 1.", reflect.TypeFor[Unknown](), false},
	{"event.enrolled.json", "events/enrolled", "Samples were added to a person. Topic .../events/enrolled, QoS 1.", reflect.TypeFor[Enrolled](), false},
	{"event.deleted.json", "events/deleted", "A person and their samples were removed. Topic .../events/deleted, QoS 1.", reflect.TypeFor[Deleted](), false},
	{"event.finetune.json", "events/finetune", "Progress and result of a fine-tune job. Topic .../events/finetune, QoS 1.", reflect.TypeFor[Finetune](), false},
	{"event.camera.json", "events/camera", "A camera source went down or came back. Topic .../events/camera, QoS 1.", reflect.TypeFor[Camera](), false},
	{"state.person.json", "people/<person_id>/state", "A person's presence: last camera and time. Retained on .../people/<person_id>/state; an empty retained message clears it after delete.", reflect.TypeFor[PersonState](), false},
	{"state.camera.json", "cameras/<camera>/state", "A camera's status and last recognized person (read by the Home Assistant sensors). Retained on .../cameras/<camera>/state.", reflect.TypeFor[CameraState](), false},
	{"cmd.enroll.json", "cmd/enroll", "Add face samples to a new (name) or existing (person_id) person from exactly one source: images, from_unknown, or camera + next_faces. All or nothing.", reflect.TypeFor[EnrollRequest](), true},
	{"cmd.delete.json", "cmd/delete", "Remove a person with every sample.", reflect.TypeFor[DeleteRequest](), true},
	{"cmd.rename.json", "cmd/rename", "Change a person's display name (the id stays).", reflect.TypeFor[RenameRequest](), true},
	{"cmd.list.json", "cmd/list", "List enrolled people (and unknown-face clusters with unknown: true).", reflect.TypeFor[ListRequest](), true},
	{"cmd.get.json", "cmd/get", "Describe one person.", reflect.TypeFor[GetRequest](), true},
	{"cmd.feedback.json", "cmd/feedback", "Say a track (camera + track) or a stored sample was NOT person_id; optionally who it really was.", reflect.TypeFor[FeedbackRequest](), true},
	{"cmd.finetune.json", "cmd/finetune", "Start a fine-tune job; progress and result arrive on events/finetune.", reflect.TypeFor[FinetuneRequest](), true},
	{"cmd.status.json", "cmd/status", "Device status.", reflect.TypeFor[StatusRequest](), true},
	{"result.enroll.json", "enroll result", "The result of an ok enroll reply.", reflect.TypeFor[EnrollResult](), false},
	{"result.delete.json", "delete result", "The result of an ok delete reply.", reflect.TypeFor[DeleteResult](), false},
	{"result.person.json", "rename / get result", "The result of an ok rename or get reply.", reflect.TypeFor[Person](), false},
	{"result.list.json", "list result", "The result of an ok list reply.", reflect.TypeFor[ListResult](), false},
	{"result.feedback.json", "feedback result", "The result of an ok feedback reply.", reflect.TypeFor[FeedbackResult](), false},
	{"result.finetune.json", "finetune result", "The result of an ok finetune reply.", reflect.TypeFor[FinetuneResult](), false},
	{"result.status.json", "status result", "The result of an ok status reply.", reflect.TypeFor[StatusResult](), false},
	{"reply.json", "reply/<id>", "The reply to every command, on <prefix>/<device>/reply/<id> (reply/_ when the id could not be read) and, through the embedded broker, on the MQTT 5 response topic of the request.", reflect.TypeFor[Reply](), false},
}

// The event identity fields of every events/... payload.
var (
	ulidPattern = "^[0-9A-HJKMNP-TV-Z]{26}$"
	eventIDDoc  = map[string]any{"pattern": ulidPattern, "description": "Unique id of the event (a ULID, sorts by time): the same on every redelivery (reconnect, restart), a new one for every new event. De-duplicate on it."}
	bootIDDoc   = map[string]any{"pattern": ulidPattern, "description": "Id of the edged run that produced the event (a ULID, new at every start). Track ids are unique within one boot_id."}
)

// fieldDocs: descriptions and constraints per "Type.json_name".
var fieldDocs = map[string]map[string]any{
	"Recognized.event_id":               eventIDDoc,
	"Recognized.boot_id":                bootIDDoc,
	"Unknown.event_id":                  eventIDDoc,
	"Unknown.boot_id":                   bootIDDoc,
	"Enrolled.event_id":                 eventIDDoc,
	"Enrolled.boot_id":                  bootIDDoc,
	"Deleted.event_id":                  eventIDDoc,
	"Deleted.boot_id":                   bootIDDoc,
	"Finetune.event_id":                 eventIDDoc,
	"Finetune.boot_id":                  bootIDDoc,
	"Camera.event_id":                   eventIDDoc,
	"Camera.boot_id":                    bootIDDoc,
	"Recognized.camera":                 {"description": "Camera name from the config."},
	"Recognized.track":                  {"description": "Track id, unique within a run (boot_id) across cameras and reloads; not across runs."},
	"Recognized.person_id":              {"description": "Stable id of the person."},
	"Recognized.name":                   {"description": "Display name at the time of the event."},
	"Recognized.distance":               {"description": "Distance to the person's nearest cluster in the matching space (lower is closer).", "minimum": 0},
	"Recognized.confidence":             {"description": "0..1, from the distance and the open-set threshold.", "minimum": 0, "maximum": 1},
	"Recognized.box":                    {"description": "Last face box of the track, frame pixels."},
	"Recognized.quality":                {"description": "Quality score 0..1 of the track's best face.", "minimum": 0, "maximum": 1},
	"Recognized.frames":                 {"description": "Faces of the track that the decision used.", "minimum": 0},
	"Recognized.first_seen":             {"description": "When the track started."},
	"Recognized.time":                   {"description": "When the decision was made (media time in edged replay)."},
	"Recognized.model":                  {"description": "Active head version."},
	"Recognized.source":                 {"description": "Media file, in edged replay."},
	"Unknown.unknown_id":                {"description": "Persistent unknown-face cluster (e.g. unknown-3); name it with cmd/enroll from_unknown."},
	"Unknown.person_id":                 {"type": "null", "description": "Always null: present so every recognized/unknown event has the same keys."},
	"Unknown.name":                      {"type": "null", "description": "Always null, like person_id."},
	"Unknown.confidence":                {"description": "0..1: confidence that the face is the nearest person (low, hence unknown).", "minimum": 0, "maximum": 1},
	"Unknown.distance":                  {"description": "Distance to the nearest enrolled person (above the threshold).", "minimum": 0},
	"Unknown.quality":                   {"minimum": 0, "maximum": 1},
	"Enrolled.created":                  {"description": "True when the person is new."},
	"Enrolled.source":                   {"enum": []string{SourceImages, SourceUnknown, SourceCamera, SourceFile}},
	"Enrolled.request_id":               {"description": "Id of the enroll command, when there was one."},
	"Deleted.samples":                   {"description": "Samples removed.", "minimum": 0},
	"Finetune.state":                    {"enum": []string{FinetuneStarted, FinetuneProgress, FinetuneDone, FinetuneRejected, FinetuneFailed}, "description": "done: the new head passed the guard and is active; rejected: it was worse on the held-out check and the old one stays."},
	"Finetune.progress":                 {"minimum": 0, "maximum": 1},
	"Finetune.metrics":                  {"description": "For example accuracy_before, accuracy_after."},
	"Finetune.message":                  {"description": "Why the job was rejected or failed."},
	"Camera.state":                      {"enum": []string{CameraUp, CameraDown}},
	"Camera.reason":                     {"description": "Why it went down (never a URL or credentials)."},
	"PersonState.camera":                {"description": "Last camera that saw the person; absent if never seen."},
	"PersonState.confidence":            {"minimum": 0, "maximum": 1},
	"CameraState.status":                {"enum": []string{CameraUp, CameraDown}},
	"CameraState.person_id":             {"description": "Last recognized person."},
	"EnrollRequest.id":                  {"description": "Request id: 1-128 bytes, no '/', '+', '#', control characters, not starting with '$'. The reply goes to reply/<id>."},
	"EnrollRequest.name":                {"description": "Display name of a new person (exactly one of name / person_id).", "maxLength": 128},
	"EnrollRequest.person_id":           {"description": "Add samples to this existing person."},
	"EnrollRequest.images":              {"description": "Base64 JPEG or PNG photos (a data:image/...;base64, prefix is accepted), 1-20, each at most 8 MiB decoded and 32-6000 pixels per side."},
	"EnrollRequest.from_unknown":        {"description": "Name an unknown-face cluster (e.g. unknown-3)."},
	"EnrollRequest.camera":              {"description": "Take the next good faces of this camera (with next_faces)."},
	"EnrollRequest.next_faces":          {"minimum": 1, "maximum": 50},
	"EnrollRequest.timeout_s":           {"description": "Camera source: give up after this many seconds (0: the service default).", "minimum": 0, "maximum": 600},
	"RenameRequest.name":                {"maxLength": 128},
	"FeedbackRequest.person_id":         {"description": "The person the face was wrongly matched to."},
	"FeedbackRequest.track":             {"description": "Track id from the recognized event (with camera).", "minimum": 1},
	"FeedbackRequest.sample_id":         {"description": "Or a stored sample."},
	"FeedbackRequest.correct_person_id": {"description": "Who it really was, if known."},
	"FinetuneRequest.loss":              {"enum": []string{LossContrastive, LossTriplet}, "description": "Empty or absent: the configured default."},
	"FinetuneRequest.epochs":            {"minimum": 0, "maximum": 1000, "description": "0: the configured default."},
	"FinetuneRequest.dry_run":           {"description": "Train and evaluate, but keep the current head."},
	"Reply.id":                          {"description": "The request id; empty when it could not be read."},
	"Reply.ok":                          {"description": "true: result is present; false: error is present."},
	"Reply.result":                      {"description": "Command-specific (result.*.json); {} when there is nothing to say."},
	"ReplyError.code":                   {"enum": []string{CodeBadJSON, CodeUnknownField, CodeMissingField, CodeInvalidField, CodeTooLarge, CodeBadImage, CodeNoFace, CodePoorQuality, CodeUnknownPerson, CodeUnknownCluster, CodeUnknownCamera, CodeUnknownCommand, CodeConflict, CodeBusy, CodeTimeout, CodeUnavailable, CodeStorageFull, CodeInternal}, "description": "Machine-readable; the set may grow (treat unknown codes like internal)."},
	"ReplyError.message":                {"description": "For humans; may change between versions."},
	"StatusResult.outbox_pending":       {"description": "Events waiting to be published."},
	"Person.last_camera":                {"description": "Camera that last recognized the person."},
}

var eventTypeConst = map[reflect.Type]string{
	reflect.TypeFor[Recognized](): TypeRecognized, reflect.TypeFor[Unknown](): TypeUnknown,
	reflect.TypeFor[Enrolled](): TypeEnrolled, reflect.TypeFor[Deleted](): TypeDeleted,
	reflect.TypeFor[Finetune](): TypeFinetune, reflect.TypeFor[Camera](): TypeCamera,
	reflect.TypeFor[PersonState](): TypePersonState, reflect.TypeFor[CameraState](): TypeCameraState,
}

const (
	timestampPattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$`
	idPattern        = `^[^$/+#\x00-\x1f\x7f][^/+#\x00-\x1f\x7f]{0,127}$`
)

// schemaOf builds the schema of a Go type (ordered keys: a slice of pairs
// marshalled by orderedMap).
func schemaOf(t reflect.Type, owner string, input bool) orderedMap {
	switch t {
	case reflect.TypeFor[Timestamp]():
		return orderedMap{{"type", "string"}, {"format", "date-time"}, {"pattern", timestampPattern}, {"description", "RFC 3339, milliseconds, UTC."}}
	case reflect.TypeFor[Images]():
		return orderedMap{{"type", "array"}, {"minItems", 1}, {"maxItems", 20}, {"items", orderedMap{{"type", "string"}, {"contentEncoding", "base64"}}}}
	}
	switch t.Kind() {
	case reflect.String:
		return orderedMap{{"type", "string"}}
	case reflect.Bool:
		return orderedMap{{"type", "boolean"}}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return orderedMap{{"type", "integer"}}
	case reflect.Uint, reflect.Uint64, reflect.Uint32:
		return orderedMap{{"type", "integer"}, {"minimum", 0}}
	case reflect.Float64, reflect.Float32:
		return orderedMap{{"type", "number"}}
	case reflect.Pointer:
		return schemaOf(t.Elem(), owner, input)
	case reflect.Slice:
		return orderedMap{{"type", "array"}, {"items", schemaOf(t.Elem(), owner, input)}}
	case reflect.Map:
		return orderedMap{{"type", "object"}, {"additionalProperties", schemaOf(t.Elem(), owner, input)}}
	case reflect.Interface:
		return orderedMap{{"type", "object"}}
	case reflect.Struct:
		props := orderedMap{}
		var required []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			fs := schemaOf(f.Type, t.Name(), input)
			if name == "type" && eventTypeConst[t] != "" {
				fs = orderedMap{{"const", eventTypeConst[t]}}
			}
			if f.Type.Kind() == reflect.String && (name == "id" || strings.HasSuffix(name, "_id")) && t != reflect.TypeFor[Reply]() {
				fs = append(fs, kv{"pattern", idPattern})
			}
			extra := fieldDocs[t.Name()+"."+name]
			keys := make([]string, 0, len(extra))
			for k := range extra {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				fs = fs.set(k, extra[k])
			}
			props = append(props, kv{name, fs})
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && !(t == reflect.TypeFor[Reply]() && name != "id" && name != "ok") {
				required = append(required, name)
			}
		}
		if input {
			// Requests: only "id" is always required; the rest is checked by
			// the command's rules (see the description).
			required = []string{"id"}
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				if name != "id" && !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
					required = append(required, name)
				}
			}
		}
		s := orderedMap{{"type", "object"}, {"properties", props}}
		if len(required) > 0 {
			s = append(s, kv{"required", required})
		}
		s = append(s, kv{"additionalProperties", !input})
		return s
	}
	panic(fmt.Sprintf("schemaOf: unsupported %s", t))
}

type kv struct {
	k string
	v any
}

// orderedMap marshals as a JSON object with keys in order.
type orderedMap []kv

func (m orderedMap) set(k string, v any) orderedMap {
	for i := range m {
		if m[i].k == k {
			m[i].v = v
			return m
		}
	}
	return append(m, kv{k, v})
}

func (m orderedMap) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func schemaDir(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "docs", "schema", "mqtt")
}

func generateSchema(d schemaDoc) []byte {
	s := orderedMap{
		{"$schema", "https://json-schema.org/draft/2020-12/schema"},
		{"$id", "https://github.com/edged-dev/edged/docs/schema/mqtt/" + d.file},
		{"title", d.title},
		{"description", d.desc},
	}
	s = append(s, schemaOf(d.typ, "", d.input)...)
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		panic(err)
	}
	// Readable text: encoding/json escapes <, > and & for HTML.
	b = []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b)))
	return append(b, '\n')
}

func TestSchemas(t *testing.T) {
	dir := schemaDir(t)
	if *updateSchemas {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range schemaDocs {
		want := generateSchema(d)
		path := filepath.Join(dir, d.file)
		if *updateSchemas {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (generate with: go test ./mqtt -run TestSchemas -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with the Go types (regenerate with: go test ./mqtt -run TestSchemas -update)", path)
		}
	}
}

// TestSchemasAcceptRealPayloads validates payloads produced by the Go code
// (and good command requests) against the schemas with a small validator
// for the keywords the schemas use.
func TestSchemasAcceptRealPayloads(t *testing.T) {
	now := At(time.Now())
	loss := 0.12
	samples := map[string][]any{
		"event.recognized.json": {Recognized{Camera: "front", Track: 3, PersonID: "01HX", Name: "Alice", Distance: 0.31, Confidence: 0.9, Box: Box{1, 2, 3, 4}, Quality: 0.8, Frames: 5, FirstSeen: now, Time: now, Model: "h3"}},
		"event.unknown.json":    {Unknown{Camera: "front", Track: 4, UnknownID: "unknown-3", Distance: 0.8, Time: now, FirstSeen: now}},
		"event.enrolled.json":   {Enrolled{PersonID: "p1", Name: "A", Created: true, SamplesAdded: 3, SamplesTotal: 3, Source: SourceImages, RequestID: "r1", Time: now}},
		"event.deleted.json":    {Deleted{PersonID: "p1", Name: "A", Samples: 3, Time: now}},
		"event.finetune.json":   {Finetune{JobID: "j1", State: FinetuneDone, Progress: 1, Epoch: 5, Epochs: 5, Loss: &loss, HeadVersion: "h4", Metrics: map[string]float64{"accuracy_after": 0.97}, Time: now}},
		"event.camera.json":     {Camera{Camera: "front", State: CameraDown, Reason: "stream ended", Time: now}},
		"state.person.json":     {PersonState{PersonID: "p1", Name: "A", Camera: "front", LastSeen: now, Confidence: 0.9}, PersonState{PersonID: "p2", Name: "B"}},
		"state.camera.json":     {CameraState{Camera: "front", Status: CameraUp, PersonID: "p1", Name: "A", LastSeen: now, Time: now}},
		"result.enroll.json":    {EnrollResult{PersonID: "p1", Name: "A", Created: true, SamplesAdded: 2, SamplesTotal: 2}},
		"result.list.json":      {ListResult{People: []Person{{PersonID: "p1", Name: "A", Samples: 2, Created: now, Updated: now}}, Unknown: []UnknownCluster{{UnknownID: "unknown-1", Count: 4, FirstSeen: now, LastSeen: now}}}},
		"result.status.json":    {StatusResult{Device: "d", Version: "v", Cameras: []CameraStatus{{Name: "front", Status: CameraUp, FPS: 25}}}},
		"reply.json": {
			Reply{ID: "r1", OK: true, Result: EnrollResult{PersonID: "p1"}},
			Reply{ID: "", Error: &ReplyError{Code: CodeBadJSON, Message: "not JSON"}},
		},
	}
	requests := map[string][]string{
		"cmd.enroll.json":   {`{"id":"r1","name":"Alice","images":["` + b64(testPNG(t, 40, 40)) + `"]}`, `{"id":"r2","person_id":"p1","camera":"front","next_faces":5}`},
		"cmd.feedback.json": {`{"id":"f1","person_id":"p1","camera":"front","track":7}`},
		"cmd.status.json":   {`{"id":"s1"}`},
	}
	for file, vals := range samples {
		for _, v := range vals {
			b, err := json.Marshal(v)
			if pl, ok := v.(Payload); ok {
				// Published payloads go through NewEvent, which gives
				// events their event_id and boot_id.
				var ev Event
				ev, err = NewEvent(pl)
				b = ev.Payload
			}
			if err != nil {
				t.Fatal(err)
			}
			requests[file] = append(requests[file], string(b))
		}
	}
	for file, docs := range requests {
		raw, err := os.ReadFile(filepath.Join(schemaDir(t), file))
		if err != nil {
			t.Fatal(err)
		}
		var schema map[string]any
		if err := json.Unmarshal(raw, &schema); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, d := range docs {
			var doc any
			if err := json.Unmarshal([]byte(d), &doc); err != nil {
				t.Fatal(err)
			}
			if errs := validate(schema, doc, "$"); len(errs) > 0 {
				t.Errorf("%s rejects %.120s: %v", file, d, errs)
			}
		}
	}
	// And the schemas are not vacuous: a request with an unknown field and
	// an event with a wrong type are rejected.
	var s map[string]any
	raw, _ := os.ReadFile(filepath.Join(schemaDir(t), "cmd.status.json"))
	_ = json.Unmarshal(raw, &s)
	if len(validate(s, map[string]any{"id": "x", "verbose": true}, "$")) == 0 {
		t.Error("cmd.status.json accepts an unknown field")
	}
	raw, _ = os.ReadFile(filepath.Join(schemaDir(t), "event.recognized.json"))
	_ = json.Unmarshal(raw, &s)
	if len(validate(s, map[string]any{"type": "unknown"}, "$")) == 0 {
		t.Error("event.recognized.json accepts type unknown")
	}
}

// validate checks doc against the subset of JSON Schema the generated files
// use: type, const, enum, properties, required, additionalProperties,
// items, minItems, maxItems, minimum, maximum, maxLength, pattern.
func validate(s map[string]any, doc any, path string) []string {
	var errs []string
	fail := func(f string, a ...any) { errs = append(errs, path+": "+fmt.Sprintf(f, a...)) }
	if c, ok := s["const"]; ok && !reflect.DeepEqual(c, doc) {
		fail("want %v", c)
	}
	if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(v any) bool { return reflect.DeepEqual(v, doc) }) {
		fail("%v not in %v", doc, e)
	}
	switch typ, _ := s["type"].(string); typ {
	case "object":
		m, ok := doc.(map[string]any)
		if !ok {
			fail("not an object")
			return errs
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asSlice(s["required"]) {
			if _, ok := m[r.(string)]; !ok {
				fail("missing %s", r)
			}
		}
		for k, v := range m {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, validate(ps, v, path+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap && props != nil {
					fail("unknown property %s", k)
				}
			case map[string]any:
				errs = append(errs, validate(ap, v, path+"."+k)...)
			}
		}
	case "array":
		a, ok := doc.([]any)
		if !ok {
			fail("not an array")
			return errs
		}
		if n, ok := s["minItems"].(float64); ok && float64(len(a)) < n {
			fail("fewer than %v items", n)
		}
		if n, ok := s["maxItems"].(float64); ok && float64(len(a)) > n {
			fail("more than %v items", n)
		}
		if is, ok := s["items"].(map[string]any); ok {
			for i, v := range a {
				errs = append(errs, validate(is, v, fmt.Sprintf("%s[%d]", path, i))...)
			}
		}
	case "string":
		str, ok := doc.(string)
		if !ok {
			fail("not a string")
			return errs
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
		if n, ok := s["maxLength"].(float64); ok && float64(len([]rune(str))) > n {
			fail("longer than %v", n)
		}
	case "integer", "number":
		n, ok := doc.(float64)
		if !ok || (typ == "integer" && n != float64(int64(n))) {
			fail("not an %s", typ)
			return errs
		}
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("%v < %v", n, m)
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			fail("%v > %v", n, m)
		}
	case "boolean":
		if _, ok := doc.(bool); !ok {
			fail("not a boolean")
		}
	}
	return errs
}

func asSlice(v any) []any {
	a, _ := v.([]any)
	return a
}
