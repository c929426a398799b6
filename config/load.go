package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Environment variables that override the file. They carry secrets, so a
// unit's EnvironmentFile (mode 0600) can hold them instead of the
// world-readable config.
const (
	EnvMQTTUsername = "EDGED_MQTT_USERNAME"
	EnvMQTTPassword = "EDGED_MQTT_PASSWORD"
	EnvStoreKey     = "EDGED_STORE_KEY"
)

// Load reads the file at path over the defaults, applies the environment
// overrides, fills the derived defaults and validates. It is Parse +
// ApplyEnv + Finish + Validate for callers that have no flags to apply in
// between.
func Load(path string) (Config, error) {
	cfg, err := ParseFile(path)
	if err != nil {
		return cfg, err
	}
	cfg.ApplyEnv(os.Getenv)
	cfg.Finish()
	if err := cfg.Validate(); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.File = path
		}
		return cfg, err
	}
	return cfg, nil
}

// ParseFile reads and parses a configuration file (see Parse).
func ParseFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Default(), fmt.Errorf("%w %q: %w", ErrRead, path, err)
	}
	cfg, err := Parse(data)
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		ve.File = path
	case err != nil:
		err = fmt.Errorf("%s: %w", path, err) // a syntax error names the file too
	}
	return cfg, err
}

// Parse decodes YAML over Default(). Unknown keys and values of the wrong
// type are reported together, each with its key, as a *ValidationError; a
// YAML syntax error wraps ErrSyntax. An empty document gives the defaults.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, nil
		}
		return cfg, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return cfg, fmt.Errorf("%w: more than one yaml document", ErrSyntax)
	}
	var ps problems
	checkNode(&doc, reflect.TypeOf(cfg), "", &ps)
	if len(ps) > 0 {
		return cfg, &ValidationError{Problems: ps}
	}
	if err := doc.Decode(&cfg); err != nil {
		// checkNode accepts only what decodes, so this is a bug in it; still
		// an error, not a panic.
		return cfg, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	return cfg, nil
}

// UnmarshalYAML lets a camera be written as its URL alone.
func (c *Camera) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		c.URL = n.Value
		return nil
	}
	type plain Camera // no UnmarshalYAML: avoids recursion
	return n.Decode((*plain)(c))
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	cameraType   = reflect.TypeOf(Camera{})
)

// checkNode walks the YAML tree against the struct type and records every
// unknown key and every value that would not decode, with its dotted key.
func checkNode(n *yaml.Node, t reflect.Type, path string, ps *problems) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) > 0 {
			checkNode(n.Content[0], t, path, ps)
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	key := path
	if key == "" {
		key = "(top level)"
	}
	switch {
	case t == cameraType && n.Kind == yaml.ScalarNode:
		return // a camera given as its URL
	case t.Kind() == reflect.Struct && t != durationType:
		if n.Kind != yaml.MappingNode {
			ps.add(key, "want a mapping of keys, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := joinKey(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				msg := "unknown key"
				if s := suggest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				ps.add(sub, "%s", msg)
				continue
			}
			checkNode(v, f.Type, sub, ps)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.add(key, "want a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			checkNode(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), ps)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			ps.add(key, "want %s, got %s", kindName(t), describe(n))
			return
		}
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			ps.add(key, "want %s, got %q", kindName(t), n.Value)
		}
	}
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func kindName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration like 30s or 1m30s"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	case t.Kind() == reflect.String:
		return "a string"
	default:
		return t.String()
	}
}

// yamlFields maps the yaml names of t's fields to the fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	return m
}

// suggest returns the known key closest to k when it is a likely typo.
func suggest(k string, fields map[string]reflect.StructField) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(k, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ApplyEnv applies the environment overrides (secrets) with getenv, e.g.
// os.Getenv. Unset or empty variables change nothing.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv(EnvMQTTUsername); v != "" {
		c.MQTT.Username = v
	}
	if v := getenv(EnvMQTTPassword); v != "" {
		c.MQTT.Password = v
	}
	if v := getenv(EnvStoreKey); v != "" {
		c.Store.Key = v
	}
}

// Finish fills the defaults that depend on other values: the device id
// (from the host name), camera names (cam0, cam1, ...) and the MQTT client
// id. Call it after flags and environment are applied, before Validate.
func (c *Config) Finish() {
	if c.Device == "" {
		host, _ := os.Hostname()
		c.Device = SanitizeID(host)
		if c.Device == "" {
			c.Device = "edged"
		}
	}
	used := map[string]bool{}
	for _, cam := range c.Cameras {
		used[cam.Name] = true
	}
	n := 0
	for i := range c.Cameras {
		if c.Cameras[i].Name != "" {
			continue
		}
		for used[fmt.Sprintf("cam%d", n)] {
			n++
		}
		c.Cameras[i].Name = fmt.Sprintf("cam%d", n)
		used[c.Cameras[i].Name] = true
	}
	if c.MQTT.ClientID == "" {
		c.MQTT.ClientID = "edged-" + c.Device
	}
}

// SanitizeID turns s into a topic-safe id: lower case letters, digits, '-'
// and '_'; other runes become '-'.
func SanitizeID(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// ParseCameraFlag parses the value of `--camera NAME=URL` (or a bare URL,
// named later by Finish). The part before the first '=' is a name only when
// it is a valid id, so URLs with '=' in their query stay whole.
func ParseCameraFlag(v string) (Camera, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return Camera{}, errors.New("empty camera: want NAME=URL or URL")
	}
	if name, url, ok := strings.Cut(v, "="); ok && validID(name) {
		if url == "" {
			return Camera{}, fmt.Errorf("camera %q has no URL", name)
		}
		return Camera{Name: name, URL: url}, nil
	}
	return Camera{URL: v}, nil
}
