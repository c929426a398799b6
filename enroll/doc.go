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
// # Usage
//
//	g := gallery.New(gallery.Options{})
//	if err := enroll.LoadGallery(st, g); err != nil { ... }
//	en := enroll.New(st, g, detector, embedder, enroll.Options{})
//	res, err := en.Enroll(ctx, enroll.Request{Name: "Alice", Images: imgs})
//	// res.Images: accepted / refused with Code and Reason, per image
//	// err: nil, or an *enroll.Error with a stable Code() ("no_face", ...)
package enroll
