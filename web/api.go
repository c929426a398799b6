package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// overview is the start page: people and unknown faces together.
type overview struct {
	People  []Person  `json:"people"`
	Unknown []Unknown `json:"unknown"`
}

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request, _ caller) {
	people, err := s.o.Backend.People(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	us, err := s.o.Backend.Unknowns(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if people == nil {
		people = []Person{}
	}
	if us == nil {
		us = []Unknown{}
	}
	writeJSON(w, http.StatusOK, overview{People: people, Unknown: us})
}

func (s *Server) handlePeople(w http.ResponseWriter, r *http.Request, _ caller) {
	people, err := s.o.Backend.People(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if people == nil {
		people = []Person{}
	}
	writeJSON(w, http.StatusOK, people)
}

func (s *Server) handlePerson(w http.ResponseWriter, r *http.Request, _ caller) {
	p, err := s.o.Backend.Person(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if p.SampleList == nil {
		p.SampleList = []Sample{}
	}
	writeJSON(w, http.StatusOK, p)
}

type nameRequest struct {
	Name string `json:"name"`
}

func (s *Server) handleRename(w http.ResponseWriter, r *http.Request, _ caller) {
	var req nameRequest
	if !decode(w, r, &req) {
		return
	}
	p, err := s.o.Backend.Rename(r.Context(), r.PathValue("id"), req.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleDeletePerson(w http.ResponseWriter, r *http.Request, c caller) {
	id := r.PathValue("id")
	if err := s.o.Backend.DeletePerson(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("web: person deleted", "person", id, "user", c.user)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) handleRemoveSample(w http.ResponseWriter, r *http.Request, c caller) {
	id, sample := r.PathValue("id"), r.PathValue("sample")
	if err := s.o.Backend.RemoveSample(r.Context(), id, sample); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("web: sample removed", "person", id, "sample", sample, "user", c.user)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

type feedbackRequest struct {
	SampleID string `json:"sample_id"`
	Camera   string `json:"camera"`
	Track    uint64 `json:"track"`
}

func (s *Server) handleFeedback(w http.ResponseWriter, r *http.Request, _ caller) {
	var req feedbackRequest
	if !decode(w, r, &req) {
		return
	}
	f := Feedback{PersonID: r.PathValue("id"), SampleID: req.SampleID, Camera: req.Camera, Track: req.Track}
	if err := s.o.Backend.Feedback(r.Context(), f); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

// writeImage serves a picture, or a 404 that says why there is none.
func (s *Server) writeImage(w http.ResponseWriter, r *http.Request, b []byte, err error, ctype, cache, none string) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(b) == 0 {
		writeError(w, http.StatusNotFound, "no_picture", none)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

const noCropKept = "no face crop was kept for this face (store.keep_crops off, or enrolled before crops were kept)"

func (s *Server) handlePersonThumb(w http.ResponseWriter, r *http.Request, _ caller) {
	b, err := s.o.Backend.SampleThumbnail(r.Context(), r.PathValue("id"), "")
	s.writeImage(w, r, b, err, "image/png", "private, no-cache", noCropKept)
}

func (s *Server) handleSampleCrop(w http.ResponseWriter, r *http.Request, _ caller) {
	b, err := s.o.Backend.SampleThumbnail(r.Context(), r.PathValue("id"), r.PathValue("sample"))
	// A sample's crop never changes.
	s.writeImage(w, r, b, err, "image/png", "private, max-age=86400", noCropKept)
}

func (s *Server) handleUnknowns(w http.ResponseWriter, r *http.Request, _ caller) {
	us, err := s.o.Backend.Unknowns(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if us == nil {
		us = []Unknown{}
	}
	writeJSON(w, http.StatusOK, us)
}

type enrollRequest struct {
	Name     string `json:"name"`
	PersonID string `json:"person_id"`
}

func (s *Server) handleEnrollUnknown(w http.ResponseWriter, r *http.Request, c caller) {
	var req enrollRequest
	if !decode(w, r, &req) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if (req.Name == "") == (req.PersonID == "") {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "give a name (a new person) or a person (an existing one)")
		return
	}
	id := r.PathValue("id")
	res, err := s.o.Backend.EnrollUnknown(r.Context(), id, req.Name, req.PersonID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("web: unknown enrolled", "unknown", id, "person", res.PersonID, "name", res.Name, "created", res.Created, "user", c.user)
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleDismiss(w http.ResponseWriter, r *http.Request, c caller) {
	id := r.PathValue("id")
	if err := s.o.Backend.DismissUnknown(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("web: unknown dismissed", "unknown", id, "user", c.user)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

const noUnknownCrop = "no face crop was kept for this unknown face (faces filed before edged kept crops of unknown faces)"

func (s *Server) handleUnknownThumb(w http.ResponseWriter, r *http.Request, _ caller) {
	b, err := s.o.Backend.UnknownThumbnail(r.Context(), r.PathValue("id"), -1)
	s.writeImage(w, r, b, err, "image/png", "private, no-cache", noUnknownCrop)
}

func (s *Server) handleUnknownCrop(w http.ResponseWriter, r *http.Request, _ caller) {
	slot, err := strconv.Atoi(r.PathValue("slot"))
	if err != nil || slot < 0 {
		writeError(w, http.StatusBadRequest, CodeBadRequest, "slot: want a number from 0")
		return
	}
	b, err := s.o.Backend.UnknownThumbnail(r.Context(), r.PathValue("id"), slot)
	// A slot is overwritten by newer faces: revalidate.
	s.writeImage(w, r, b, err, "image/png", "private, no-cache", noUnknownCrop)
}

func (s *Server) handleCameras(w http.ResponseWriter, r *http.Request, _ caller) {
	cams, err := s.o.Backend.Cameras(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if cams == nil {
		cams = []Camera{}
	}
	writeJSON(w, http.StatusOK, cams)
}

// handleFrame grabs the latest frame on request (never streamed: one
// JPEG per click keeps the device's CPU for recognition).
func (s *Server) handleFrame(w http.ResponseWriter, r *http.Request, _ caller) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	b, err := s.o.Backend.CameraFrame(ctx, r.PathValue("name"))
	s.writeImage(w, r, b, err, "image/jpeg", "no-store", "the camera has no frame yet")
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request, _ caller) {
	m, err := s.o.Backend.Model(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if m.Heads == nil {
		m.Heads = []Head{}
	}
	writeJSON(w, http.StatusOK, m)
}

type activateRequest struct {
	ID string `json:"id"`
}

func (s *Server) handleActivate(w http.ResponseWriter, r *http.Request, c caller) {
	var req activateRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.o.Backend.ActivateHead(r.Context(), req.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("web: head activated", "head", req.ID, "user", c.user)
	writeJSON(w, http.StatusOK, map[string]string{"active_head": req.ID})
}

func (s *Server) handleRollback(w http.ResponseWriter, r *http.Request, c caller) {
	id, err := s.o.Backend.RollbackHead(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("web: head rolled back", "active", id, "user", c.user)
	writeJSON(w, http.StatusOK, map[string]string{"active_head": id})
}

func (s *Server) handleFinetune(w http.ResponseWriter, r *http.Request, c caller) {
	id, err := s.o.Backend.StartFinetune(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("web: fine-tune started", "job", id, "user", c.user)
	writeJSON(w, http.StatusOK, map[string]string{"job_id": id})
}

func (s *Server) handleRecentEvents(w http.ResponseWriter, r *http.Request, _ caller) {
	evs := s.hub.recent()
	if evs == nil {
		evs = []Event{}
	}
	writeJSON(w, http.StatusOK, evs)
}

// handleStream is the server-sent event stream of live events. A browser
// that reconnects sends Last-Event-ID and gets what it missed (while the
// server still keeps it).
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request, _ caller) {
	rc := http.NewResponseController(w)
	var after uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		after, _ = strconv.ParseUint(v, 10, 64)
	}
	backlog, ch, cancel, ok := s.hub.subscribe(after)
	defer cancel()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the server is stopping")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A first comment makes the browser's EventSource fire "open" now.
	_, _ = fmt.Fprint(w, ": edged events\nretry: 3000\n\n")
	for _, e := range backlog {
		writeSSE(w, e)
	}
	if err := rc.Flush(); err != nil {
		return
	}
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			writeSSE(w, e)
		case <-ping.C:
			// Keeps proxies and NAT from closing an idle stream.
			_, _ = fmt.Fprint(w, ": ping\n\n")
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func writeSSE(w http.ResponseWriter, e Event) {
	b, err := jsonLine(e)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "id: %d\ndata: %s\n\n", e.Seq, b)
}
