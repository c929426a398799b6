// Package enroll is edged's one enrollment path, shared by `edged enroll`,
// the MQTT enroll command and `edged eval fewshot`: it finds the face in
// each photo (refusing, with a stable code and a reason, undecodable
// images, photos without a face or with several faces of similar
// prominence, and faces of poor quality), embeds the accepted faces and
// stores the person, the samples (raw embeddings), the person's clusters
// and an optional outbox event in ONE store transaction, then updates the
// gallery. The other changes of the gallery's people go through it too
// (delete, rename, "this is not X" feedback, unknown-face clusters and
// their enrollment), so the store and the in-memory gallery stay in step.
// It is pure Go: the face finder and the embedder are interfaces
// (*detect.Detector and *infer.Embedder in production).
//
// # Backbones
//
// The Enroller records its backbone (Options.Backbone) in everything it
// writes, and keeps each sample's face crop unless Options.DropCrops.
// LoadGallery and LoadUnknowns load only the vectors of the active
// backbone and report the rest per person. After a change of backbone,
// Reembed re-computes every vector that has a crop with the new backbone:
// staged in small transactions (resumable after a kill or a cancelled ctx),
// then switched at once, so a gallery never mixes backbones. Vectors
// without a crop stay on their old backbone; NoCropMessage tells the user
// whom to enroll again.
//
// # Head versions
//
// Heads (heads.go) lists the stored head versions with whether matching can
// use each, activates one, rolls back and imports a head file: `edged
// model` and the web page follow the same rules through it.
//
// # Usage
//
//	if p, err := enroll.NeedsReembed(st, backbone); err == nil && p.Needed() {
//		rep, err := enroll.Reembed(ctx, st, enroll.ReembedOptions{Backbone: backbone,
//			ChipFromCrop: cut, Embedder: embedder})
//		// rep.Messages(): what was converted, who must be enrolled again
//	}
//	g := gallery.New(gallery.Options{})
//	rep, err := enroll.LoadGallery(st, g, backbone) // rep.Messages(): what was left out
//	en := enroll.New(st, g, detector, embedder, enroll.Options{Backbone: backbone})
//	res, err := en.Enroll(ctx, enroll.Request{Name: "Alice", Images: imgs})
//	// res.Images: accepted / refused with Code and Reason, per image
//	// err: nil, or an *enroll.Error with a stable Code() ("no_face", ...)
package enroll
