package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"unicode/utf8"
)

// Reply is the reply to every command, published on <base>/reply/<id>:
// {"id": "r1", "ok": true, "result": {...}} or
// {"id": "r1", "ok": false, "error": {"code": "bad_json", "message": "..."}}.
type Reply struct {
	ID     string      `json:"id"` // the request id ("" when it could not be read)
	OK     bool        `json:"ok"`
	Result any         `json:"result,omitempty"` // present (at least {}) when ok
	Error  *ReplyError `json:"error,omitempty"`  // present when not ok
}

// ReplyError is the error part of a failed Reply.
type ReplyError struct {
	Code    string `json:"code"`    // machine-readable, see the Code* constants
	Message string `json:"message"` // for humans; may change between versions
}

// Service is what the daemon implements to serve the commands. Methods are
// called from the command workers, possibly concurrently (Options.Workers),
// with a context that ends at the command timeout or shutdown. Requests are
// already validated. An error with a Code() string method (e.g. *Error) puts
// that code and the error's text into the reply; any other error replies
// "internal" without details (and is logged). A failing command must change
// nothing.
type Service interface {
	Enroll(context.Context, EnrollRequest) (EnrollResult, error)
	Delete(context.Context, DeleteRequest) (DeleteResult, error)
	Rename(context.Context, RenameRequest) (Person, error)
	List(context.Context, ListRequest) (ListResult, error)
	Get(context.Context, GetRequest) (Person, error)
	Feedback(context.Context, FeedbackRequest) (FeedbackResult, error)
	Finetune(context.Context, FinetuneRequest) (FinetuneResult, error)
	Status(context.Context, StatusRequest) (StatusResult, error)
}

// NewServiceRouter returns a router with the eight standard commands bound
// to svc; enroll, delete, rename, feedback and finetune are de-duplicated
// (HandleOnce).
func NewServiceRouter(svc Service, l Limits, log *slog.Logger) *Router {
	r := NewRouter(l, log)
	// Every command with a side effect runs once per (command, id).
	r.HandleOnce(CmdEnroll, Command(svc.Enroll))
	r.HandleOnce(CmdDelete, Command(svc.Delete))
	r.HandleOnce(CmdRename, Command(svc.Rename))
	r.HandleOnce(CmdFeedback, Command(svc.Feedback))
	r.HandleOnce(CmdFinetune, Command(svc.Finetune))
	r.Handle(CmdList, Command(svc.List))
	r.Handle(CmdGet, Command(svc.Get))
	r.Handle(CmdStatus, Command(svc.Status))
	return r
}

// Handler decodes and runs one command. Build one with Command.
type Handler interface {
	decode(payload []byte, l Limits) (func(context.Context) (any, error), *Error)
}

// Command makes a Handler from a typed function: the payload is decoded
// strictly into R (unknown or wrongly-cased fields, wrong types and trailing
// data are errors), R.Validate runs, then fn. R must be a struct with a
// `json:"id"` string field, like the request types of this package.
func Command[R Request, T any](fn func(context.Context, R) (T, error)) Handler {
	rt := reflect.TypeFor[R]()
	if rt.Kind() != reflect.Struct {
		panic(fmt.Sprintf("mqtt.Command: request type %s is not a struct", rt))
	}
	fields := jsonFields(rt)
	if !fields["id"] {
		panic(fmt.Sprintf("mqtt.Command: request type %s has no json \"id\" field", rt))
	}
	return &typedHandler[R, T]{fn: fn, fields: fields}
}

type typedHandler[R Request, T any] struct {
	fn     func(context.Context, R) (T, error)
	fields map[string]bool
}

func (h *typedHandler[R, T]) decode(payload []byte, l Limits) (func(context.Context) (any, error), *Error) {
	// Exact-case key check first: encoding/json matches names
	// case-insensitively, which would let {"Name": ...} through.
	keys, _ := topLevelKeys(payload)
	for _, k := range keys {
		if !h.fields[k] {
			for f := range h.fields {
				if strings.EqualFold(f, k) {
					return nil, Errorf(CodeUnknownField, "unknown field %q (names are case-sensitive: %q)", k, f)
				}
			}
			return nil, Errorf(CodeUnknownField, "unknown field %q", k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var req R
	if err := dec.Decode(&req); err != nil {
		return nil, decodeError(err)
	}
	if err := req.Validate(l); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, Errorf(CodeInvalidField, "%v", err)
	}
	return func(ctx context.Context) (any, error) {
		if dc, ok := any(req).(deepChecker); ok {
			if err := dc.deepCheck(); err != nil {
				return nil, err
			}
		}
		return h.fn(ctx, req)
	}, nil
}

// decodeError classifies an encoding/json error.
func decodeError(err error) *Error {
	var e *Error
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "request"
		}
		return Errorf(CodeInvalidField, "%s: got %s, want %s", field, te.Value, te.Type)
	case errors.As(err, &se):
		return Errorf(CodeBadJSON, "%v", se)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return Errorf(CodeUnknownField, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return Errorf(CodeBadJSON, "%v", err)
}

// jsonFields returns the JSON names of a struct's exported fields.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out[name] = true
	}
	return out
}

// Router maps command names to handlers. Register with Handle before the
// Client starts; it is read-only afterwards and safe for concurrent use.
type Router struct {
	limits   Limits
	handlers map[string]Handler
	once     map[string]bool // commands with side effects: de-duplicated
	log      *slog.Logger
}

// NewRouter returns an empty router. Zero limits take the defaults; a nil
// logger discards.
func NewRouter(l Limits, log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{limits: l.WithDefaults(), handlers: map[string]Handler{}, once: map[string]bool{}, log: log}
}

// HandleOnce registers h for a command with side effects: the Client runs
// it once per (command, request id) within Options.DedupTTL, and answers
// a repeat with the first reply (see CommandLog). Read-only commands use
// Handle, so a reused id gets fresh data.
func (r *Router) HandleOnce(name string, h Handler) {
	r.Handle(name, h)
	r.once[name] = true
}

// Once reports whether a command was registered with HandleOnce.
func (r *Router) Once(name string) bool { return r.once[name] }

// Handle registers h for the command name. It panics on an invalid or
// duplicate name, as these are programming errors.
func (r *Router) Handle(name string, h Handler) {
	if err := CheckSegment(name); err != nil {
		panic(fmt.Sprintf("mqtt: command name %q: %v", name, err))
	}
	if _, dup := r.handlers[name]; dup {
		panic(fmt.Sprintf("mqtt: command %q registered twice", name))
	}
	r.handlers[name] = h
}

// Commands lists the registered command names, sorted.
func (r *Router) Commands() []string {
	names := make([]string, 0, len(r.handlers))
	for n := range r.handlers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Limits returns the router's limits (defaults filled in).
func (r *Router) Limits() Limits { return r.limits }

// Call is a decoded command, ready to run, or the error to reply with.
type Call struct {
	Command string // command name from the topic
	ID      string // request id ("" when unreadable)
	idOK    bool   // ID can be used as a topic level
	run     func(context.Context) (any, error)
	err     *Error
}

// ReplyTo is the topic level of the reply: the id, or "_" when it could not
// be read.
func (c Call) ReplyTo() string {
	if c.idOK {
		return c.ID
	}
	return UnreadableID
}

// Err is the decoding error (nil when the call is ready to run).
func (c Call) Err() *Error { return c.err }

// Decode checks and decodes a command message; it never runs anything. It
// is cheap enough to run in the MQTT client's callback.
func (r *Router) Decode(command string, payload []byte) Call {
	c := Call{Command: command}
	fail := func(e *Error) Call { c.err = e; return c }
	if len(payload) > r.limits.MaxPayload {
		c.ID, c.idOK = peekID(payload)
		return fail(Errorf(CodeTooLarge, "payload: %d bytes, at most %d", len(payload), r.limits.MaxPayload))
	}
	if !utf8.Valid(payload) {
		c.ID, c.idOK = peekID(payload)
		return fail(Errorf(CodeBadJSON, "payload is not valid UTF-8"))
	}
	env, err := scanEnvelope(payload)
	if env.idSet {
		c.ID, c.idOK = env.id, env.idErr == nil
	}
	if err != nil {
		return fail(err)
	}
	switch {
	case !env.idSet && env.idErr == nil:
		return fail(Errorf(CodeMissingField, "id: required"))
	case env.idErr != nil:
		return fail(env.idErr)
	}
	h, ok := r.handlers[command]
	if !ok {
		return fail(Errorf(CodeUnknownCommand, "unknown command %q (known: %s)", command, strings.Join(r.Commands(), ", ")))
	}
	run, derr := h.decode(payload, r.limits)
	if derr != nil {
		return fail(derr)
	}
	c.run = run
	return c
}

// Run runs a decoded call and builds its reply. A panic in the handler
// becomes an "internal" reply.
func (r *Router) Run(ctx context.Context, c Call) (reply Reply) {
	reply.ID = c.ID
	if c.err != nil {
		reply.Error = &ReplyError{Code: c.err.Code(), Message: c.err.Error()}
		return reply
	}
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("command handler panicked", "command", c.Command, "id", c.ID, "panic", p, "stack", string(debug.Stack()))
			reply = Reply{ID: c.ID, Error: &ReplyError{Code: CodeInternal, Message: "internal error (see edged's log)"}}
		}
	}()
	res, err := c.run(ctx)
	if err != nil {
		re, internal := replyErrorFor(err)
		if internal {
			r.log.Error("command failed", "command", c.Command, "id", c.ID, "err", err)
		} else {
			r.log.Info("command rejected", "command", c.Command, "id", c.ID, "code", re.Code, "err", err)
		}
		reply.Error = &re
		return reply
	}
	if isNil(res) {
		res = struct{}{}
	}
	reply.OK, reply.Result = true, res
	return reply
}

// Dispatch is Decode followed by Run.
func (r *Router) Dispatch(ctx context.Context, command string, payload []byte) Reply {
	return r.Run(ctx, r.Decode(command, payload))
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// envelope is what scanEnvelope learns about a request.
type envelope struct {
	id    string
	idSet bool   // "id" present and a JSON string
	idErr *Error // "id" present but unusable
}

// scanEnvelope walks the top level of payload: it must be exactly one JSON
// object without duplicate keys; it extracts and checks the id.
func scanEnvelope(payload []byte) (envelope, *Error) {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return env, Errorf(CodeBadJSON, "empty payload")
		}
		return env, notJSON(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return env, Errorf(CodeBadJSON, "request must be a JSON object")
	}
	seen := map[string]bool{}
	var dup string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return env, notJSON(err)
		}
		key, ok := tok.(string)
		if !ok {
			return env, Errorf(CodeBadJSON, "not JSON: object key is not a string")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return env, notJSON(err)
		}
		if seen[key] && dup == "" {
			dup = key
		}
		seen[key] = true
		if key != "id" || dup == "id" {
			continue
		}
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			env.idErr = Errorf(CodeInvalidField, "id: must be a string")
			continue
		}
		env.id, env.idSet = id, true
		if err := CheckSegment(id); err != nil {
			env.idErr = Errorf(CodeInvalidField, "id: %v", err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return env, notJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return env, Errorf(CodeBadJSON, "trailing data after the JSON object")
	}
	if dup != "" {
		return env, Errorf(CodeBadJSON, "duplicate field %q", dup)
	}
	return env, nil
}

// notJSON describes a JSON syntax error.
func notJSON(err error) *Error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Errorf(CodeBadJSON, "not JSON: truncated")
	}
	return Errorf(CodeBadJSON, "not JSON: %v", err)
}

// topLevelKeys returns the keys of a JSON object (payload already checked by
// scanEnvelope).
func topLevelKeys(payload []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return keys, err
		}
		k, _ := tok.(string)
		keys = append(keys, k)
		if err := skipValue(dec); err != nil {
			return keys, err
		}
	}
	return keys, nil
}

// peekIDWindow is how much of an oversized or invalid payload is searched
// for the request id.
const peekIDWindow = 64 << 10

// peekID finds a top-level string "id" in the first bytes of a payload that
// is too large or not fully valid, so the error reply still reaches the
// requester. ok is false when none is found before the window ends or the
// JSON breaks.
func peekID(payload []byte) (id string, ok bool) {
	if len(payload) > peekIDWindow {
		payload = payload[:peekIDWindow]
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		if key, _ := tok.(string); key == "id" {
			v, err := dec.Token()
			if s, isStr := v.(string); err == nil && isStr {
				if CheckSegment(s) != nil {
					return s, false
				}
				return s, true
			}
			return "", false
		}
		if err := skipValue(dec); err != nil {
			return "", false
		}
	}
	return "", false
}

// skipValue consumes one JSON value from dec.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}
