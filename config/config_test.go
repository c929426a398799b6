package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMinimalConfigIsOneCameraURL(t *testing.T) {
	cfg, err := Parse([]byte("cameras: [rtsp://192.168.1.20/stream1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnv(func(string) string { return "" })
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("minimal config invalid: %v", err)
	}
	if len(cfg.Cameras) != 1 || cfg.Cameras[0].URL != "rtsp://192.168.1.20/stream1" || cfg.Cameras[0].Name != "cam0" {
		t.Fatalf("cameras = %+v", cfg.Cameras)
	}
	def := Default()
	if cfg.Detect != def.Detect || cfg.Pipeline != def.Pipeline || cfg.HTTP != def.HTTP {
		t.Errorf("defaults not kept: %+v", cfg)
	}
	if cfg.Device == "" || cfg.MQTT.ClientID != "edged-"+cfg.Device {
		t.Errorf("device %q client id %q", cfg.Device, cfg.MQTT.ClientID)
	}
}

func TestEmptyFileGivesDefaults(t *testing.T) {
	cfg, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("empty file: %+v", cfg)
	}
}

func TestExampleFileIsValidAndMatchesDefaults(t *testing.T) {
	cfg, err := ParseFile(filepath.Join("..", "systemd", "edged.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// The example documents the defaults: everything but the camera list
	// and the derived ids must equal Default().
	def := Default()
	def.Finish()
	cfg.Cameras = nil
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("example file differs from Default():\n got %+v\nwant %+v", cfg, def)
	}
}

// Every key of the struct is documented in docs/config.md.
func TestEveryKeyIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join("..", "systemd", "edged.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range allKeys(reflect.TypeOf(Config{}), "") {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/config.md does not document `%s`", k)
		}
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(example), leaf+":") {
			t.Errorf("systemd/edged.example.yaml does not show %s", k)
		}
	}
}

func allKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for name, f := range yamlFields(t) {
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		k := prefix + name
		switch {
		case ft.Kind() == reflect.Struct:
			keys = append(keys, allKeys(ft, k+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, allKeys(ft.Elem(), k+"[].")...)
		default:
			keys = append(keys, k)
		}
	}
	return keys
}

func TestParseReportsEveryUnknownKeyAndBadType(t *testing.T) {
	in := `
devise: x
detect:
  min_face_size: big
  score_treshold: 0.5
recognition:
  recheck: soon
cameras:
  - url: /dev/video0
    fsp: 10
  - name: [a]
    url: x
http: 5
`
	_, err := Parse([]byte(in))
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	want := map[string]string{
		"devise":                "did you mean \"device\"",
		"detect.min_face_size":  "want a whole number",
		"detect.score_treshold": "did you mean \"score_threshold\"",
		"recognition.recheck":   "want a duration",
		"cameras[0].fsp":        "did you mean \"fps\"",
		"cameras[1].name":       "want a string",
		"http":                  "want a mapping",
	}
	got := map[string]string{}
	for _, p := range ve.Problems {
		got[p.Key] = p.Message
	}
	for k, frag := range want {
		if !strings.Contains(got[k], frag) {
			t.Errorf("%s: got %q, want it to contain %q", k, got[k], frag)
		}
	}
	if len(ve.Problems) != len(want) {
		t.Errorf("got %d problems, want %d: %v", len(ve.Problems), len(want), ve)
	}
}

func TestSyntaxError(t *testing.T) {
	for _, in := range []string{"cameras: [a\n", "a: 1\n---\nb: 2\n", "\t- x"} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: want ErrSyntax, got %v", in, err)
		}
	}
}

func TestSyntaxErrorNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edged.yaml")
	if err := os.WriteFile(path, []byte("cameras: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(path)
	if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v, want ErrSyntax naming %s", err, path)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, ErrRead) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v", err)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	neg := -1.0
	tiny := 2
	cfg := Default()
	cfg.Device = "my device"
	cfg.Log.Level = "loud"
	cfg.HTTP.Addr = "9108"
	cfg.MQTT.Broker = "http://x"
	cfg.MQTT.KeepAlive = 0
	cfg.MQTT.CertFile = "/nonexistent/cert.pem"
	cfg.Detect.ScoreThreshold = 1.5
	cfg.Detect.MaxFaceSize = 20
	cfg.Recognition.Decide = 5
	cfg.Recognition.MaxEmbeds = 2
	cfg.Pipeline.EmbedBatch = 0
	cfg.Store.MinFreeMB = -5
	cfg.Cameras = []Camera{
		{Name: "door", URL: "/dev/video0", Threshold: &neg},
		{Name: "door", URL: "", FPS: -1, Width: 640, MinFaceSize: &tiny},
	}
	cfg.Finish()
	err := cfg.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	wantKeys := []string{
		"device", "log.level", "http.addr", "mqtt.broker", "mqtt.keepalive", "mqtt.cert_file",
		"detect.score_threshold", "detect.max_face_size", "recognition.max_embeds",
		"pipeline.embed_batch", "store.min_free_mb", "cameras[0].threshold", "cameras[1].name", "cameras[1].url",
		"cameras[1].fps", "cameras[1].width", "cameras[1].min_face_size",
	}
	got := map[string]bool{}
	for _, p := range ve.Problems {
		got[p.Key] = true
	}
	for _, k := range wantKeys {
		if !got[k] {
			t.Errorf("no problem reported for %s", k)
		}
	}
	msg := err.Error()
	for _, k := range wantKeys {
		if !strings.Contains(msg, k+": ") {
			t.Errorf("error text lacks %s:\n%s", k, msg)
		}
	}
}

func TestEnvOverridesSecrets(t *testing.T) {
	cfg, err := Parse([]byte("mqtt: {username: file-user, password: file-pass}\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvMQTTPassword: "s3cret", EnvStoreKey: "00112233445566778899aabbccddeeff"}
	cfg.ApplyEnv(func(k string) string { return env[k] })
	if cfg.MQTT.Username != "file-user" || cfg.MQTT.Password != "s3cret" || cfg.Store.Key != env[EnvStoreKey] {
		t.Fatalf("%+v %+v", cfg.MQTT, cfg.Store)
	}
	// store.key is never read from the file.
	if _, err := Parse([]byte("store: {key: abc}\n")); err == nil {
		t.Fatal("store.key accepted from the file")
	}
}

func TestPerCameraOverrides(t *testing.T) {
	in := `
detect: {min_face_size: 50, score_threshold: 0.6}
recognition: {threshold: 0.55, min_quality: 0.2}
cameras:
  - {name: door, url: /dev/video0, threshold: 0.4, min_face_size: 80, fps: 5}
  - {name: yard, url: rtsp://cam/1, score_threshold: 0.9, min_quality: 0.5, enabled: false}
  - gst:videotestsrc ! appsink
`
	cfg, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	door, yard, third := cfg.Camera(0), cfg.Camera(1), cfg.Camera(2)
	if door.Threshold != 0.4 || door.MinFaceSize != 80 || door.ScoreThreshold != 0.6 || door.MinQuality != 0.2 || door.FPS != 5 {
		t.Errorf("door = %+v", door)
	}
	if yard.Threshold != 0.55 || yard.MinFaceSize != 50 || yard.ScoreThreshold != 0.9 || yard.MinQuality != 0.5 {
		t.Errorf("yard = %+v", yard)
	}
	if third.Name != "cam0" || third.URL != "gst:videotestsrc ! appsink" {
		t.Errorf("third = %+v", third)
	}
	en := cfg.EnabledCameras()
	if len(en) != 2 || en[0].Name != "door" || en[1].Name != "cam0" {
		t.Errorf("enabled = %+v", en)
	}
}

func TestParseCameraFlag(t *testing.T) {
	tests := []struct {
		in        string
		name, url string
		err       bool
	}{
		{"door=rtsp://10.0.0.5/s1", "door", "rtsp://10.0.0.5/s1", false},
		{"rtsp://10.0.0.5/s1?a=b", "", "rtsp://10.0.0.5/s1?a=b", false},
		{"/dev/video0", "", "/dev/video0", false},
		{"0", "", "0", false},
		{"lab=gst:videotestsrc ! video/x-raw,width=640 ! appsink", "lab", "gst:videotestsrc ! video/x-raw,width=640 ! appsink", false},
		{"gst:videotestsrc ! video/x-raw,width=640 ! appsink", "", "gst:videotestsrc ! video/x-raw,width=640 ! appsink", false},
		{"door=", "", "", true},
		{"", "", "", true},
	}
	for _, tt := range tests {
		c, err := ParseCameraFlag(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if c.Name != tt.name || c.URL != tt.url {
			t.Errorf("%q: got %q %q", tt.in, c.Name, c.URL)
		}
	}
}

func TestDurationsAndPointers(t *testing.T) {
	cfg, err := Parse([]byte("recognition: {recheck: 1m30s, unknown_clusters: false}\nmqtt: {discovery: false}\nfinetune: {enabled: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Recognition.Recheck != 90*time.Second || cfg.UnknownClustersEnabled() || cfg.DiscoveryEnabled() || cfg.FinetuneEnabled() {
		t.Fatalf("%+v", cfg)
	}
}

// Turning one default-true switch off leaves the others on (the defaults
// must not share a pointer the decoder writes through).
func TestDefaultSwitchesAreIndependent(t *testing.T) {
	for _, in := range []string{"finetune: {enabled: false}\n", "mqtt: {discovery: false}\n", "recognition: {unknown_clusters: false}\n"} {
		cfg, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		on := 0
		for _, b := range []bool{cfg.FinetuneEnabled(), cfg.DiscoveryEnabled(), cfg.UnknownClustersEnabled()} {
			if b {
				on++
			}
		}
		if on != 2 {
			t.Errorf("%q: %d of 3 switches on, want 2", in, on)
		}
		if d := Default(); !d.FinetuneEnabled() || !d.DiscoveryEnabled() || !d.UnknownClustersEnabled() {
			t.Fatalf("Default() changed by parsing %q", in)
		}
	}
}

func TestSanitizeID(t *testing.T) {
	for in, want := range map[string]string{"Pi-Kitchen.local": "pi-kitchen-local", "--x--": "x", "": ""} {
		if got := SanitizeID(in); got != want {
			t.Errorf("SanitizeID(%q) = %q, want %q", in, got, want)
		}
	}
}

// The web page changes the gallery: only a loopback bind may go without
// authentication.
func TestHTTPNonLoopbackNeedsAuth(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "web.passwd")
	if err := os.WriteFile(pw, []byte("admin:$2y$10$abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr, pwFile, cert string
		want               []string // problem keys
	}{
		{addr: "127.0.0.1:9108"},
		{addr: "127.0.0.5:80"},
		{addr: "[::1]:9108"},
		{addr: "localhost:9108"},
		{addr: "0.0.0.0:9108", want: []string{"http.auth"}},
		{addr: ":9108", want: []string{"http.auth"}},
		{addr: "192.168.1.4:9108", want: []string{"http.auth"}},
		{addr: "edge.local:9108", want: []string{"http.auth"}},
		{addr: "0.0.0.0:9108", pwFile: pw},
		{addr: "0.0.0.0:9108", pwFile: filepath.Join(dir, "missing"), want: []string{"http.auth.password_file"}},
		{addr: "127.0.0.1:9108", cert: pw, want: []string{"http.tls_cert"}}, // no key
	} {
		cfg := Default()
		cfg.HTTP.Addr, cfg.HTTP.Auth.PasswordFile, cfg.HTTP.TLSCert = tt.addr, tt.pwFile, tt.cert
		cfg.Finish()
		err := cfg.Validate()
		var got []string
		var ve *ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				got = append(got, p.Key)
			}
		} else if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v: problems %v (%v), want %v", tt, got, err, tt.want)
		}
	}
	if cfg := Default(); cfg.HTTP.Auth.Enabled() || cfg.HTTP.TLSCert != "" {
		t.Error("auth or TLS on by default")
	}
}

func TestMinFreeBytes(t *testing.T) {
	// store.Options: 0 = the store's default, negative = off; the config's
	// 0 means off.
	for mb, want := range map[int]int64{0: -1, 128: 128 << 20, 1: 1 << 20} {
		if got := (Store{MinFreeMB: mb}).MinFreeBytes(); got != want {
			t.Errorf("MinFreeBytes(%d) = %d, want %d", mb, got, want)
		}
	}
}
