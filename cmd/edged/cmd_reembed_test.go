package main

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edged-dev/edged/agent"
	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/store"
)

// TestPeopleReembedAfterBackboneChange: people enrolled with the dlib
// backbone (crops kept by default) are re-embedded with MobileFaceNet by
// `edged people reembed`; afterwards the MobileFaceNet gallery holds all of
// them, the dlib one none, and a second run has nothing to do. The stored
// vectors are the ones MobileFaceNet gives for the crops' chips.
func TestPeopleReembedAfterBackboneChange(t *testing.T) {
	storeCLINeedsLFW(t)
	t.Setenv(store.KeyEnv, "")
	data := filepath.Join(t.TempDir(), "data")
	for _, person := range []string{"Gordon_Brown", "Abel_Pacheco"} {
		args := append([]string{"--name", person, "--data", data, "--backbone", "dlib"}, storeCLIImages(t, person)[:3]...)
		if code, err, out := storeCLIRun(t, func() (int, error) { return runEnroll(t.Context(), args) }); code != exitOK {
			t.Fatalf("enroll %s with dlib: %d %v %s", person, code, err, out)
		}
	}
	code, err, out := storeCLIRun(t, func() (int, error) {
		return runPeople(t.Context(), []string{"reembed", "--data", data, "--json"})
	})
	var rep enroll.ReembedReport
	if code != exitOK || err != nil || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("reembed: %d %v %s", code, err, out)
	}
	if rep.Backbone != infer.BackboneMobileFaceNet || rep.Reembedded != 6 || rep.Skipped != 0 {
		t.Fatalf("report %+v", rep)
	}
	st, err := store.Open(store.Options{Dir: data, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mfn, _ := infer.Lookup(infer.BackboneMobileFaceNet)
	g := gallery.New(gallery.Options{Space: mfn.Space})
	lr, err := enroll.LoadGallery(st, g, mfn.ID)
	if err != nil || lr.People != 2 || lr.Samples != 6 || len(lr.Reembeddable)+len(lr.NoCrop) != 0 {
		t.Fatalf("mobilefacenet gallery after re-embedding: %+v, %v", lr, err)
	}
	dl, _ := infer.Lookup(infer.BackboneDlib)
	if lr, err := enroll.LoadGallery(st, gallery.New(gallery.Options{Space: dl.Space}), dl.ID); err != nil || lr.People != 0 {
		t.Fatalf("dlib gallery after the switch: %+v, %v (want nobody: never a mix)", lr, err)
	}
	ss, err := st.Samples(resolvePersonID(st, "Gordon_Brown"))
	if err != nil || len(ss) != 3 {
		t.Fatal(ss, err)
	}
	for _, s := range ss {
		if s.BackboneID() != mfn.ID || len(s.Embedding) != mfn.Dim || !s.HasCrop {
			t.Errorf("sample %s: backbone %s, %d values, crop %v", s.ID, s.BackboneID(), len(s.Embedding), s.HasCrop)
		}
	}
	st.Close()
	code, _, out = storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"reembed", "--data", data}) })
	if code != exitOK || !strings.Contains(out, "nothing to do") {
		t.Errorf("second reembed: %d %s", code, out)
	}
}

// TestPeopleReembedLegacyStore: a store from before backbones (no backbone
// ids, no crops) is read as dlib; re-embedding for MobileFaceNet cannot
// convert it and names each person with the command that fixes it, and
// changes nothing.
func TestPeopleReembedLegacyStore(t *testing.T) {
	t.Setenv(store.KeyEnv, "")
	data := filepath.Join(t.TempDir(), "data")
	storeCLISeed(t, data, nil) // Alice and Bob, 128-d samples, no backbone, no crop
	code, err, out := storeCLIRun(t, func() (int, error) { return runPeople(t.Context(), []string{"reembed", "--data", data}) })
	if code != exitFailure || err == nil {
		t.Fatalf("legacy store: exit %d, err %v; want a failure naming the people", code, err)
	}
	for _, want := range []string{"Alice", "Bob", "edged enroll --name", "no face crop"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %q:\n%s", want, out)
		}
	}
	st, err := store.Open(store.Options{Dir: data, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ps, _ := st.People()
	for _, p := range ps {
		ss, _ := st.Samples(p.ID)
		if len(ss) != 1 || ss[0].BackboneID() != store.LegacyBackbone || len(ss[0].Embedding) != 128 {
			t.Errorf("%s: samples changed: %+v", p.Name, ss)
		}
	}
	// The dlib gallery still loads them: nothing was dropped.
	dl, _ := infer.Lookup(infer.BackboneDlib)
	if lr, err := enroll.LoadGallery(st, gallery.New(gallery.Options{Space: dl.Space}), dl.ID); err != nil || lr.People != 2 {
		t.Errorf("dlib gallery of the legacy store: %+v, %v", lr, err)
	}
}

// TestDaemonReembedsAtStart: the daemon's core, opened on a store enrolled
// with dlib while model.backbone is mobilefacenet, re-embeds before it
// loads the gallery, so the person is matchable at once.
func TestDaemonReembedsAtStart(t *testing.T) {
	storeCLINeedsLFW(t)
	t.Setenv(store.KeyEnv, "")
	data := filepath.Join(t.TempDir(), "data")
	args := append([]string{"--name", "Gordon Brown", "--data", data, "--backbone", "dlib"}, storeCLIImages(t, "Gordon_Brown")[:3]...)
	if code, err, out := storeCLIRun(t, func() (int, error) { return runEnroll(t.Context(), args) }); code != exitOK {
		t.Fatalf("enroll with dlib: %d %v %s", code, err, out)
	}
	cfg := config.Default()
	cfg.DataDir = data
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c, err := agent.OpenCore(cfg, log, agent.CoreOptions{DataDir: data, ModelDir: defaultModelDir(), DetectWorkers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if info := c.Gallery().Info(); info.People != 1 || info.Samples != 3 {
		t.Errorf("gallery after start: %+v, want 1 person with 3 samples", info)
	}
	if !strings.Contains(logs.String(), "re-embedding done") {
		t.Errorf("no re-embedding in the log:\n%s", logs.String())
	}
}
