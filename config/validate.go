package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Validate checks every key and returns a *ValidationError listing all the
// problems at once (nil when there is none). Call Finish first: an empty
// device id or camera name is a problem here.
func (c *Config) Validate() error {
	var ps problems

	if !validID(c.Device) {
		ps.add("device", "%q is not a valid id: use letters, digits, '-' and '_' (at most 64)", c.Device)
	}
	oneOf(&ps, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(&ps, "log.format", c.Log.Format, "auto", "text", "json")

	if c.HTTPEnabled() {
		ok := hostPort(&ps, "http.addr", c.HTTP.Addr)
		// The web page enrolls and deletes people: reachable from the
		// network, it must ask who is there.
		if ok && !c.HTTP.Auth.Enabled() && !LoopbackAddr(c.HTTP.Addr) {
			ps.add("http.auth", "http.addr %q is not a loopback address: set http.auth.password_file or http.auth.token_file (docs/web.md), or bind 127.0.0.1", c.HTTP.Addr)
		}
	}
	fileExists(&ps, "http.auth.password_file", c.HTTP.Auth.PasswordFile)
	fileExists(&ps, "http.auth.token_file", c.HTTP.Auth.TokenFile)
	fileExists(&ps, "http.tls_cert", c.HTTP.TLSCert)
	fileExists(&ps, "http.tls_key", c.HTTP.TLSKey)
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		ps.add("http.tls_cert", "tls_cert and tls_key go together")
	}

	m := c.MQTT
	if m.Broker != "" {
		u, err := url.Parse(m.Broker)
		switch {
		case err != nil:
			ps.add("mqtt.broker", "not a URL: %v", err)
		case !oneOfSet(u.Scheme, "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss"):
			ps.add("mqtt.broker", "scheme %q: want tcp://, ssl://, ws:// or wss:// (e.g. tcp://localhost:1883)", u.Scheme)
		case u.Host == "":
			ps.add("mqtt.broker", "%q has no host (e.g. tcp://localhost:1883)", m.Broker)
		}
	} else {
		hostPort(&ps, "mqtt.listen", m.Listen)
	}
	if m.TopicPrefix == "" || strings.ContainsAny(m.TopicPrefix, "+#") ||
		strings.HasPrefix(m.TopicPrefix, "/") || strings.HasSuffix(m.TopicPrefix, "/") {
		ps.add("mqtt.topic_prefix", "%q: want a non-empty topic without '+', '#' or a leading/trailing '/'", m.TopicPrefix)
	}
	if m.ClientID == "" || len(m.ClientID) > 128 {
		ps.add("mqtt.client_id", "want 1 to 128 characters")
	}
	if m.KeepAlive < time.Second {
		ps.add("mqtt.keepalive", "%v: want at least 1s", m.KeepAlive)
	}
	if m.DiscoveryPrefix == "" && c.DiscoveryEnabled() {
		ps.add("mqtt.discovery_prefix", "empty while discovery is on")
	}
	if m.MaxPayload < 64<<10 || m.MaxPayload > 256<<20 {
		ps.add("mqtt.max_payload", "%d bytes: want 65536 .. 268435456", m.MaxPayload)
	}
	fileExists(&ps, "mqtt.ca_file", m.CAFile)
	fileExists(&ps, "mqtt.cert_file", m.CertFile)
	fileExists(&ps, "mqtt.key_file", m.KeyFile)
	if (m.CertFile == "") != (m.KeyFile == "") {
		ps.add("mqtt.cert_file", "cert_file and key_file go together (client certificate)")
	}
	if m.Password != "" && m.Username == "" {
		ps.add("mqtt.username", "a password is set but no username")
	}

	fileExists(&ps, "store.key_file", c.Store.KeyFile)
	if c.Store.MinFreeMB < 0 {
		ps.add("store.min_free_mb", "%d: want 0 (off) or more", c.Store.MinFreeMB)
	}
	if c.Store.OutboxMaxMB < 0 {
		ps.add("store.outbox_max_mb", "%d: want 0 (no bound) or more", c.Store.OutboxMaxMB)
	}
	if c.Store.OutboxMaxAge < 0 || (c.Store.OutboxMaxAge > 0 && c.Store.OutboxMaxAge < time.Hour) {
		ps.add("store.outbox_max_age", "%v: want 0 (no bound) or at least 1h", c.Store.OutboxMaxAge)
	}
	if m.DedupTTL < time.Minute {
		ps.add("mqtt.dedup_ttl", "%v: want at least 1m", m.DedupTTL)
	}
	if c.Store.GCInterval < time.Minute {
		ps.add("store.gc_interval", "%v: want at least 1m", c.Store.GCInterval)
	}

	d := c.Detect
	oneOf(&ps, "detect.backend", d.Backend, "dnn", "haar")
	oneOf(&ps, "model.backbone", c.Model.Backbone, "mobilefacenet", "dlib")
	unit(&ps, "detect.score_threshold", d.ScoreThreshold, false)
	unit(&ps, "detect.nms_threshold", d.NMSThreshold, false)
	if d.MinFaceSize < 8 || d.MinFaceSize > 4096 {
		ps.add("detect.min_face_size", "%d px: want 8 .. 4096", d.MinFaceSize)
	}
	if d.MaxFaceSize != 0 && d.MaxFaceSize < d.MinFaceSize {
		ps.add("detect.max_face_size", "%d px is below min_face_size (%d); 0 means no limit", d.MaxFaceSize, d.MinFaceSize)
	}

	r := c.Recognition
	if r.Threshold < 0 || r.Threshold > 4 {
		ps.add("recognition.threshold", "%v: want a distance 0 .. 4 (0 = the gallery's default)", r.Threshold)
	}
	if r.Margin < 0 || r.Margin > 4 {
		ps.add("recognition.margin", "%v: want 0 .. 4 (0 = the gallery's default)", r.Margin)
	}
	unit(&ps, "recognition.min_quality", r.MinQuality, true)
	if r.Decide < 1 || r.Decide > 100 {
		ps.add("recognition.decide", "%d: want 1 .. 100", r.Decide)
	}
	if r.MaxEmbeds < r.Decide || r.MaxEmbeds > 1000 {
		ps.add("recognition.max_embeds", "%d: want decide (%d) .. 1000", r.MaxEmbeds, r.Decide)
	}
	if r.Recheck < 100*time.Millisecond {
		ps.add("recognition.recheck", "%v: want at least 100ms", r.Recheck)
	}
	if r.TrackTimeout < 100*time.Millisecond {
		ps.add("recognition.track_timeout", "%v: want at least 100ms", r.TrackTimeout)
	}
	if r.UnknownMax < 0 {
		ps.add("recognition.unknown_max", "%d: want 0 (no bound) or more", r.UnknownMax)
	}
	if r.UnknownTTL < 0 || (r.UnknownTTL > 0 && r.UnknownTTL < time.Hour) {
		ps.add("recognition.unknown_ttl", "%v: want 0 (never) or at least 1h", r.UnknownTTL)
	}
	if r.ExperienceMinConfidence < 0 || r.ExperienceMinConfidence > 1 || r.ExperienceMinConfidence != r.ExperienceMinConfidence {
		ps.add("recognition.experience_min_confidence", "%v: want 0..1 (0: the default)", r.ExperienceMinConfidence)
	}
	if r.ExperienceMaxPerPerson < 0 || r.ExperienceMaxPerPerson > 10000 {
		ps.add("recognition.experience_max_per_person", "%d: want 0 (default) .. 10000", r.ExperienceMaxPerPerson)
	}
	if r.ExperienceMaxTotal < 0 || r.ExperienceMaxTotal > 1000000 {
		ps.add("recognition.experience_max_total", "%d: want 0 (default) .. 1000000", r.ExperienceMaxTotal)
	}

	p := c.Pipeline
	intRange(&ps, "pipeline.face_queue", p.FaceQueue, 1, 1024)
	intRange(&ps, "pipeline.event_queue", p.EventQueue, 1, 1<<20)
	intRange(&ps, "pipeline.embed_batch", p.EmbedBatch, 1, 256)
	if p.EmbedWait < 0 || p.EmbedWait > time.Second {
		ps.add("pipeline.embed_wait", "%v: want 0 .. 1s", p.EmbedWait)
	}
	if c.Finetune.Debounce < 0 {
		ps.add("finetune.debounce", "%v: want 0 or more", c.Finetune.Debounce)
	}

	f := c.Fleet
	if c.FleetEnabled() {
		if !validFleetName(f.Name) {
			ps.add("fleet.name", "%q: use letters, digits, '-', '_' and '.' (at most 64)", f.Name)
		}
		if c.Device == "fleet" {
			ps.add("device", "\"fleet\" is reserved while fleet.name is set (the fleet's topics are <prefix>/fleet/<name>/...)")
		}
		if m.Broker == "" {
			ps.add("fleet.name", "a fleet needs a broker its devices share (Mosquitto, EMQX): set mqtt.broker (the embedded broker serves one device)")
		}
	}
	fileExists(&ps, "fleet.key_file", f.KeyFile)
	if f.TombstoneTTL < time.Hour {
		ps.add("fleet.tombstone_ttl", "%v: want at least 1h", f.TombstoneTTL)
	}
	intRange(&ps, "fleet.max_samples", f.MaxSamples, 1, 1024)
	intRange(&ps, "fleet.max_record_bytes", f.MaxRecordBytes, 64<<10, 256<<20)

	names := map[string]int{}
	for i, cam := range c.Cameras {
		k := fmt.Sprintf("cameras[%d]", i)
		if !validID(cam.Name) {
			ps.add(k+".name", "%q is not a valid id: use letters, digits, '-' and '_' (at most 64)", cam.Name)
		} else if j, dup := names[cam.Name]; dup {
			ps.add(k+".name", "%q is also the name of cameras[%d]", cam.Name, j)
		} else {
			names[cam.Name] = i
		}
		if strings.TrimSpace(cam.URL) == "" {
			ps.add(k+".url", "missing: a device path or index, rtsp://, http://, a video file, an image folder or gst:PIPELINE")
		} else if cam.URL == "gst:" {
			ps.add(k+".url", "gst: needs a pipeline after the colon")
		}
		if cam.FPS < 0 || cam.FPS > 1000 {
			ps.add(k+".fps", "%v: want 0 (the source's rate) .. 1000", cam.FPS)
		}
		if cam.Width < 0 || cam.Height < 0 || (cam.Width == 0) != (cam.Height == 0) {
			ps.add(k+".width", "width and height go together and are positive (got %dx%d)", cam.Width, cam.Height)
		}
		if cam.Threshold != nil && (*cam.Threshold < 0 || *cam.Threshold > 4) {
			ps.add(k+".threshold", "%v: want a distance 0 .. 4", *cam.Threshold)
		}
		if cam.MinFaceSize != nil && (*cam.MinFaceSize < 8 || *cam.MinFaceSize > 4096) {
			ps.add(k+".min_face_size", "%d px: want 8 .. 4096", *cam.MinFaceSize)
		}
		if cam.ScoreThreshold != nil {
			unit(&ps, k+".score_threshold", *cam.ScoreThreshold, false)
		}
		if cam.MinQuality != nil {
			unit(&ps, k+".min_quality", *cam.MinQuality, true)
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

// LoopbackAddr reports whether the host of addr (host:port) is a loopback
// address: 127.0.0.0/8, ::1 or "localhost". An empty host (every
// interface) and any other name are not.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validID reports whether s can be a device id or camera name: it appears
// in MQTT topics and metric labels.
func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// validFleetName reports whether s can name a fleet: one topic level of
// letters, digits, '-', '_' and '.'.
func validFleetName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func oneOfSet(v string, set ...string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func oneOf(ps *problems, key, v string, set ...string) {
	if !oneOfSet(v, set...) {
		ps.add(key, "%q: want one of %s", v, strings.Join(set, ", "))
	}
}

// hostPort checks a listen address and reports whether it is valid.
func hostPort(ps *problems, key, addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		ps.add(key, "%q: want host:port (e.g. 127.0.0.1:9108)", addr)
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ps.add(key, "%q: port must be 0 .. 65535", addr)
		return false
	}
	return true
}

func fileExists(ps *problems, key, path string) {
	if path == "" {
		return
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		ps.add(key, "%v", err)
	case st.IsDir():
		ps.add(key, "%q is a directory, want a file", path)
	}
}

// unit checks a fraction: (0, 1], or [0, 1] when zero is allowed.
func unit(ps *problems, key string, v float64, zeroOK bool) {
	if v < 0 || v > 1 || (v == 0 && !zeroOK) {
		lo := "0 (exclusive)"
		if zeroOK {
			lo = "0"
		}
		ps.add(key, "%v: want %s .. 1", v, lo)
	}
}

func intRange(ps *problems, key string, v, lo, hi int) {
	if v < lo || v > hi {
		ps.add(key, "%d: want %d .. %d", v, lo, hi)
	}
}
