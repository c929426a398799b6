package enroll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"log/slog"
	"math"
	"slices"

	"github.com/edged-dev/edged/face"
	"github.com/edged-dev/edged/store"
)

// ReembedOptions configure Reembed.
type ReembedOptions struct {
	// Backbone is the target backbone id (required): every stored vector
	// of another backbone that has a face crop is re-computed by it.
	Backbone string
	// ChipFromCrop cuts the target backbone's chip from a stored crop (a
	// face.CropTemplate chip): detect.ChipFromCrop with the backbone's
	// template, injected so that this package stays pure Go. Required. An
	// error from it stops Reembed (it is the code, not the data).
	ChipFromCrop func(crop face.Chip) (face.Chip, error)
	// Embedder is the target backbone's embedder. Required.
	Embedder Embedder
	// Batch is the number of chips per Embed call, and of vectors staged
	// per transaction: a kill loses at most one batch. Default 32.
	Batch int
	// Progress, when set, is called after each batch with the items staged
	// so far (including those staged by an interrupted earlier run) and
	// the items to stage in all.
	Progress func(done, total int)
	// Logger, default: discard.
	Logger *slog.Logger

	// Test hooks: beforeSwitch runs once every item is staged (an error
	// stops Reembed there, like a crash); switchOps caps the operations
	// per switch transaction (0: as many as Badger takes); afterSwitchTxn
	// runs after each switch transaction.
	beforeSwitch   func() error
	switchOps      int
	afterSwitchTxn func() error
}

func (o *ReembedOptions) fill() error {
	switch {
	case o.Backbone == "":
		return errors.New("re-embed: no target backbone")
	case o.ChipFromCrop == nil:
		return errors.New("re-embed: no ChipFromCrop")
	case o.Embedder == nil:
		return errors.New("re-embed: no embedder")
	}
	if o.Batch <= 0 {
		o.Batch = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// ReembedReport says what Reembed did.
type ReembedReport struct {
	// Backbone is the target.
	Backbone string `json:"backbone"`
	// Reembedded counts the samples and negatives switched to the target
	// by this call; Resumed how many of them an interrupted earlier run
	// had staged (they were not embedded again).
	Reembedded int `json:"reembedded"`
	Resumed    int `json:"resumed,omitempty"`
	// Skipped counts the samples and negatives of another backbone left
	// untouched because they have no (usable) face crop; NoCrop lists
	// them per person. They are never loaded into the target's gallery.
	Skipped int           `json:"skipped"`
	NoCrop  []PersonCount `json:"no_crop,omitempty"`
	// UnknownsDeleted counts the unknown-face clusters of another backbone
	// deleted at the switch (they keep no crops; they are transient).
	UnknownsDeleted int `json:"unknowns_deleted,omitempty"`
	// HeadsDeactivated are the active heads of another backbone
	// deactivated at the switch (they do not fit the new dimension).
	HeadsDeactivated []string `json:"heads_deactivated,omitempty"`
}

// Messages are the report's user-facing lines.
func (r ReembedReport) Messages() []string {
	var out []string
	if r.Reembedded > 0 {
		m := fmt.Sprintf("re-embedded %s with %s from their stored face crops", items(r.Reembedded, 0), r.Backbone)
		if r.Resumed > 0 {
			m += fmt.Sprintf(" (%d staged by an interrupted run)", r.Resumed)
		}
		out = append(out, m)
	}
	for _, p := range r.NoCrop {
		out = append(out, NoCropMessage(p, r.Backbone))
	}
	if r.UnknownsDeleted > 0 {
		out = append(out, fmt.Sprintf("deleted %s of the previous backbone (they keep no face crops; new ones form as faces are seen again)",
			plural(r.UnknownsDeleted, "unknown-face cluster", "unknown-face clusters")))
	}
	for _, h := range r.HeadsDeactivated {
		out = append(out, fmt.Sprintf("deactivated fine-tuned head %s (trained for another backbone): matching uses the identity until a head is trained for %s", h, r.Backbone))
	}
	return out
}

// PendingReport is what NeedsReembed found.
type PendingReport struct {
	// Backbone is the target.
	Backbone string `json:"backbone"`
	// Items counts the samples and negatives of another backbone that have
	// a face crop; Reembeddable lists them per person.
	Items        int           `json:"items"`
	Reembeddable []PersonCount `json:"reembeddable,omitempty"`
	// NoCrop lists, per person, those without a crop (Reembed leaves them).
	NoCrop []PersonCount `json:"no_crop,omitempty"`
	// InProgress is the interrupted re-embedding, nil when there is none.
	InProgress *store.ReembedState `json:"in_progress,omitempty"`
}

// Needed reports whether Reembed has work: vectors to re-embed, or an
// interrupted re-embedding to finish or clear.
func (p PendingReport) Needed() bool { return p.Items > 0 || p.InProgress != nil }

// NeedsReembed tells whether st holds vectors of another backbone than
// backbone ("" reads as store.LegacyBackbone) that Reembed can convert, or
// an interrupted re-embedding. It reads the samples and negatives once and
// writes nothing; the daemon calls it at start.
func NeedsReembed(st *store.Store, backbone string) (PendingReport, error) {
	rep := PendingReport{Backbone: store.BackboneOf(backbone)}
	err := st.View(func(tx *store.Tx) error {
		ps, err := tx.People()
		if err != nil {
			return err
		}
		tl := newTally(rep.Backbone, ps)
		if err := tx.EachSample(func(s store.Sample) error { tl.sample(s); return nil }); err != nil {
			return err
		}
		if err := tx.EachNegative(func(n store.Negative) error { tl.negative(n); return nil }); err != nil {
			return err
		}
		rep.Reembeddable, rep.NoCrop = tl.lists()
		for _, p := range rep.Reembeddable {
			rep.Items += p.Samples + p.Negatives
		}
		rep.InProgress, err = tx.ReembedState()
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("check re-embedding: %w", err)
	}
	return rep, nil
}

// item is a stored sample or negative to re-embed.
type item struct {
	kind     string // store.StagedSample or store.StagedNegative
	person   string
	id       string
	backbone string // its current backbone
}

func (it item) key() string { return it.kind + "/" + it.person + "/" + it.id }

// Reembed moves the stored gallery to the backbone opts.Backbone, from the
// face crops the store keeps:
//
//   - Stage: every sample and negative of another backbone that has a crop
//     gets its chip cut from the crop (opts.ChipFromCrop) and embedded in
//     batches (opts.Embedder); each batch of new vectors is written under
//     staging keys in its own small transaction, next to a record of the
//     re-embedding in progress. Items staged by an interrupted run are not
//     embedded again, so a kill loses at most one batch and a cancelled ctx
//     stops cleanly between batches, keeping what was staged.
//   - Switch: once every item is staged, each item's vector is replaced by
//     its staged one (and its backbone set to the target), its staging key
//     and its person's stored clusters (now stale) deleted; unknown-face
//     clusters of another backbone are deleted and active heads of another
//     backbone deactivated; then the in-progress record goes. All of it in
//     one transaction when it fits, else in several (store.ErrTxnTooBig).
//     Every step is idempotent: an interrupted switch resumes where it
//     stopped, and an item already of the target backbone is skipped.
//
// The stored vectors change backbone only at the switch, so LoadGallery
// with the target backbone never loads a mix: before it, none of the
// re-embedded vectors; after it, all of them. The caller must not match or
// enroll anything until Reembed returns (the daemon runs it before loading
// the gallery).
//
// Items without a crop are left untouched on their old backbone (never
// loaded into the target's gallery) and reported per person in NoCrop
// (ReembedReport.Messages tells the user to enroll them again). When there
// is nothing to re-embed and no interrupted re-embedding, Reembed writes
// nothing at all.
func Reembed(ctx context.Context, st *store.Store, opts ReembedOptions) (ReembedReport, error) {
	if err := opts.fill(); err != nil {
		return ReembedReport{}, err
	}
	target := opts.Backbone
	log := opts.Logger.With("target", target)
	rep := ReembedReport{Backbone: target}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("re-embed: %w", err)
	}

	// Survey: what is to re-embed, what is staged already.
	var (
		work        []item
		tl          *tally
		state       *store.ReembedState
		staged      = map[string]bool{}
		staleStaged []store.StagedVector // staged for another target
	)
	err := st.View(func(tx *store.Tx) error {
		ps, err := tx.People()
		if err != nil {
			return err
		}
		tl = newTally(target, ps)
		known := make(map[string]bool, len(ps))
		for _, p := range ps {
			known[p.ID] = true
		}
		if err := tx.EachSample(func(s store.Sample) error {
			if !tl.sample(s) && s.HasCrop && known[s.PersonID] {
				work = append(work, item{store.StagedSample, s.PersonID, s.ID, s.BackboneID()})
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.EachNegative(func(n store.Negative) error {
			if !tl.negative(n) && n.HasCrop && known[n.PersonID] {
				work = append(work, item{store.StagedNegative, n.PersonID, n.ID, n.BackboneID()})
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.EachStaged(func(v store.StagedVector) error {
			if v.Backbone == target {
				staged[item{kind: v.Kind, person: v.PersonID, id: v.ItemID}.key()] = true
			} else {
				staleStaged = append(staleStaged, v)
			}
			return nil
		}); err != nil {
			return err
		}
		state, err = tx.ReembedState()
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("re-embed: %w", err)
	}
	finish := func() ReembedReport {
		_, rep.NoCrop = tl.lists()
		rep.Skipped = 0
		for _, p := range rep.NoCrop {
			rep.Skipped += p.Samples + p.Negatives
		}
		return rep
	}
	if len(work) == 0 && state == nil && len(staged) == 0 && len(staleStaged) == 0 {
		return finish(), nil // nothing to do: write nothing
	}

	// Record the re-embedding (a restart then knows to finish it), and drop
	// what an abandoned re-embedding to another backbone staged.
	next := store.ReembedState{Target: target}
	switch {
	case state != nil && state.Target == target:
		next.Started = state.Started
		log.Info("resuming an interrupted re-embedding", "started", state.Started, "staged", len(staged))
	case state != nil:
		log.Warn("abandoning an interrupted re-embedding to another backbone", "other", state.Target, "staged", len(staleStaged))
	}
	var ops []func(tx *store.Tx) error
	for _, v := range staleStaged {
		ops = append(ops, func(tx *store.Tx) error { return tx.DeleteStaged(v.Kind, v.PersonID, v.ItemID) })
	}
	ops = append(ops, func(tx *store.Tx) error { return tx.PutReembedState(next) })
	if err := runOps(st, ops, 0, nil); err != nil {
		return finish(), fmt.Errorf("re-embed: record the state: %w", err)
	}

	// Stage.
	var todo []item
	for _, it := range work {
		if staged[it.key()] {
			rep.Resumed++
		} else {
			todo = append(todo, it)
		}
	}
	done, total := rep.Resumed, len(work)
	if opts.Progress != nil {
		opts.Progress(done, total)
	}
	if len(todo) > 0 {
		log.Info("re-embedding stored faces", "items", total, "staged", done)
	}
	dim := 0
	for start := 0; start < len(todo); start += opts.Batch {
		if err := ctx.Err(); err != nil {
			return finish(), fmt.Errorf("re-embed: stopped after staging %d of %d: %w", done, total, err)
		}
		batch := todo[start:min(start+opts.Batch, len(todo))]
		n, err := stageBatch(st, opts, tl, batch, &dim)
		if err != nil {
			return finish(), fmt.Errorf("re-embed: %w", err)
		}
		done += len(batch)
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
		log.Debug("staged a batch", "vectors", n, "done", done, "total", total)
	}
	if err := ctx.Err(); err != nil {
		return finish(), fmt.Errorf("re-embed: stopped after staging %d of %d: %w", done, total, err)
	}
	if opts.beforeSwitch != nil {
		if err := opts.beforeSwitch(); err != nil {
			return finish(), err
		}
	}

	// Switch.
	var toSwitch []store.StagedVector
	var unknowns []string
	err = st.View(func(tx *store.Tx) error {
		if err := tx.EachStaged(func(v store.StagedVector) error {
			if v.Backbone == target {
				toSwitch = append(toSwitch, v)
			}
			return nil
		}); err != nil {
			return err
		}
		us, err := tx.Unknowns()
		for _, u := range us {
			if unknownBackbone(u) != target {
				unknowns = append(unknowns, u.ID)
			}
		}
		return err
	})
	if err != nil {
		return finish(), fmt.Errorf("re-embed: %w", err)
	}
	switched := make([]bool, len(toSwitch))
	deleted := make([]bool, len(unknowns))
	var heads []string
	ops = ops[:0]
	for i, v := range toSwitch {
		ops = append(ops, func(tx *store.Tx) error {
			ok, err := switchItem(tx, v)
			switched[i] = ok
			return err
		})
	}
	for i, id := range unknowns {
		ops = append(ops, func(tx *store.Tx) error {
			err := tx.DeleteUnknown(id)
			if errors.Is(err, store.ErrUnknownNotFound) {
				return nil
			}
			deleted[i] = err == nil
			return err
		})
	}
	ops = append(ops, func(tx *store.Tx) error {
		// heads is only added to: a partly committed run of this operation
		// must not forget the heads it deactivated.
		hs, err := tx.Heads()
		if err != nil {
			return err
		}
		for _, h := range hs {
			if h.Active && h.BackboneID() != target {
				h.Active = false
				if err := tx.SaveHead(&h); err != nil {
					return err
				}
				if !slices.Contains(heads, h.ID) {
					heads = append(heads, h.ID)
				}
			}
		}
		return nil
	}, func(tx *store.Tx) error { return tx.DeleteReembedState() })
	if err := runOps(st, ops, opts.switchOps, opts.afterSwitchTxn); err != nil {
		return finish(), fmt.Errorf("re-embed: switch to %s (run again to resume it): %w", target, err)
	}
	for i, ok := range switched {
		if ok {
			rep.Reembedded++
			if toSwitch[i].Kind == store.StagedSample {
				tl.current[toSwitch[i].PersonID]++ // for NoCrop's Current
			}
		}
	}
	for _, ok := range deleted {
		if ok {
			rep.UnknownsDeleted++
		}
	}
	rep.HeadsDeactivated = heads
	if rep.Resumed > rep.Reembedded {
		rep.Resumed = rep.Reembedded
	}
	log.Info("re-embedded the stored faces", "reembedded", rep.Reembedded, "without_crop", finish().Skipped,
		"unknowns_deleted", rep.UnknownsDeleted, "heads_deactivated", len(heads))
	return finish(), nil
}

// stageBatch cuts, embeds and stages one batch of items in one
// transaction. Items whose crop is missing or unreadable are moved to the
// tally's no-crop counts. dim is the embedding length seen so far (0: none
// yet). It returns the number of vectors staged.
func stageBatch(st *store.Store, opts ReembedOptions, tl *tally, batch []item, dim *int) (int, error) {
	crops := make([][]byte, len(batch))
	err := st.View(func(tx *store.Tx) error {
		for i, it := range batch {
			var err error
			if it.kind == store.StagedSample {
				crops[i], err = tx.Crop(it.person, it.id)
			} else {
				crops[i], err = tx.NegativeCrop(it.person, it.id)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var chips []face.Chip
	var items []item
	for i, it := range batch {
		crop, err := decodeCrop(crops[i])
		if err != nil {
			opts.Logger.Warn("face crop unusable: the item keeps its old backbone", "kind", it.kind, "person", it.person, "id", it.id, "err", err)
			tl.demote(it)
			continue
		}
		chip, err := opts.ChipFromCrop(crop)
		if err != nil {
			return 0, fmt.Errorf("cut the chip of %s %s from its crop: %w", it.kind, it.id, err)
		}
		chips = append(chips, chip)
		items = append(items, it)
	}
	if len(chips) == 0 {
		return 0, nil
	}
	embs, err := opts.Embedder.Embed(chips)
	if err != nil {
		return 0, fmt.Errorf("embed: %w", err)
	}
	if len(embs) != len(chips) {
		return 0, fmt.Errorf("embedder returned %d embeddings for %d chips", len(embs), len(chips))
	}
	for i, v := range embs {
		if *dim == 0 {
			*dim = len(v)
		}
		if len(v) != *dim || !finite(v) {
			return 0, fmt.Errorf("embedder output %d: %d values (want %d) or not finite", i, len(v), *dim)
		}
	}
	n := 0
	err = st.Update(func(tx *store.Tx) error {
		n = 0
		for i, it := range items {
			err := tx.PutStaged(store.StagedVector{Kind: it.kind, PersonID: it.person, ItemID: it.id, Backbone: opts.Backbone, Embedding: embs[i]})
			if errors.Is(err, store.ErrSampleNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// decodeCrop decodes a stored crop: a PNG of a face.CropTemplate chip.
func decodeCrop(b []byte) (face.Chip, error) {
	if b == nil {
		return face.Chip{}, errors.New("no crop stored")
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return face.Chip{}, fmt.Errorf("decode crop: %w", err)
	}
	c, err := face.ChipFromImage(img)
	if err != nil {
		return face.Chip{}, err
	}
	if c.Side() != face.CropSize {
		return face.Chip{}, fmt.Errorf("%w: crop is %dx%d, want %dx%d", face.ErrChipSize, c.Side(), c.Side(), face.CropSize, face.CropSize)
	}
	return c, nil
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return len(v) > 0
}

// switchItem replaces an item's vector by its staged one and deletes the
// staged copy and the person's stored clusters. It is idempotent: an item
// already of the target backbone (a switch interrupted between its writes)
// only loses its staged copy, and a deleted item is skipped. ok reports
// whether the item now holds the staged vector.
func switchItem(tx *store.Tx, v store.StagedVector) (ok bool, err error) {
	var current string
	switch v.Kind {
	case store.StagedSample:
		s, err := tx.Sample(v.PersonID, v.ItemID)
		if errors.Is(err, store.ErrSampleNotFound) {
			return false, tx.DeleteStaged(v.Kind, v.PersonID, v.ItemID)
		}
		if err != nil {
			return false, err
		}
		current = s.BackboneID()
	case store.StagedNegative:
		n, err := tx.Negative(v.PersonID, v.ItemID)
		if errors.Is(err, store.ErrSampleNotFound) {
			return false, tx.DeleteStaged(v.Kind, v.PersonID, v.ItemID)
		}
		if err != nil {
			return false, err
		}
		current = n.BackboneID()
	default:
		return false, tx.DeleteStaged(v.Kind, v.PersonID, v.ItemID)
	}
	if current != v.Backbone {
		if v.Kind == store.StagedSample {
			err = tx.SetSampleEmbedding(v.PersonID, v.ItemID, v.Backbone, v.Embedding)
		} else {
			err = tx.SetNegativeEmbedding(v.PersonID, v.ItemID, v.Backbone, v.Embedding)
		}
		if err != nil {
			return false, err
		}
	}
	if err := tx.DeleteStaged(v.Kind, v.PersonID, v.ItemID); err != nil {
		return true, err
	}
	// The clusters were computed in the old backbone's space; LoadGallery
	// writes them back from the re-loaded gallery.
	return true, tx.DeleteClusters(v.PersonID)
}

// runOps runs idempotent operations in as few transactions as possible: a
// transaction takes operations until Badger says it is full
// (store.ErrTxnTooBig) or maxOps of them (0: no limit), commits, and the next
// one carries on from the operation that did not fit (run again in full:
// they are idempotent). after, when set, runs after each commit.
func runOps(st *store.Store, ops []func(tx *store.Tx) error, maxOps int, after func() error) error {
	for start := 0; start < len(ops); {
		end := start
		err := st.Update(func(tx *store.Tx) error {
			end = start // the callback may run again after a write conflict
			for end < len(ops) && (maxOps <= 0 || end-start < maxOps) {
				if err := ops[end](tx); err != nil {
					if errors.Is(err, store.ErrTxnTooBig) && end > start {
						return nil // commit what fits, carry on in the next one
					}
					return err
				}
				end++
			}
			return nil
		})
		if err != nil {
			return err
		}
		start = end
		if after != nil {
			if err := after(); err != nil {
				return err
			}
		}
	}
	return nil
}

// demote moves an item the tally counted as re-embeddable (it has a crop
// flag) to the no-crop counts (the crop is missing or unreadable).
func (t *tally) demote(it item) {
	if pc := t.withCrop[it.person]; pc != nil {
		if it.kind == store.StagedSample {
			pc.Samples--
		} else {
			pc.Negatives--
		}
		if pc.Samples+pc.Negatives == 0 {
			delete(t.withCrop, it.person)
		}
	}
	pc := t.other(it.person, it.backbone, false)
	if it.kind == store.StagedSample {
		pc.Samples++
	} else {
		pc.Negatives++
	}
}
