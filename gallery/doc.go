// Package gallery is edged's matching: an in-memory index of the enrolled
// people, the open-set decision (who is this, or nobody I know), the
// per-camera tracker that turns frames into one decision per appearance,
// and the online clustering of unknown faces into persistent unknown-N
// identities. It is pure Go, with no store, TensorFlow or OpenCV import: it
// takes raw embeddings and returns decisions.
//
// # Usage
//
//	g := gallery.New(gallery.Options{})     // threshold fitted to the gallery
//	err := g.Load(people)                   // or Upsert / Remove / AddNegative
//	m, err := g.Match(raw)                  // m.Known, m.PersonID, m.Confidence, m.Reason
//
//	tr := gallery.NewTracker(g, gallery.TrackerOptions{}) // one per camera
//	want := tr.Want(now, boxes, quality)    // embed only these faces
//	up := tr.Update(now, detections)        // up.Decisions: one per track
//
// # The decision
//
// Samples are projected into the matching space (the active fine-tuned
// head, see SetProjector; the identity by default) and L2-normalised. Each
// person's samples form one or more clusters (a new cluster when a sample
// is farther than ClusterRadius from the existing ones); a cluster's
// centroid is the normalised mean of its samples. A face is accepted as
// the person of the nearest centroid when
//
//   - its distance is at most the threshold, fitted to the gallery (see
//     Calibration: a 1:1 verification threshold lets most strangers in
//     once there are many people, so the gallery measures how near
//     strangers come and aims at Options.TargetFAR),
//   - it is at least Options.Margin nearer than the second-best person and
//     than every negative sample of the person ("this is not X", which
//     moves X's boundary away from look-alikes), and
//   - optionally (Options.KNN), the nearest samples vote for the same
//     person.
//
// Confidence is the calibrated probability that the person is right.
// Measured on the LFW dev fold (46 people with >= 5 images enrolled, 580
// images of 389 other people as strangers): 1 shot: top-1 0.989,
// identification at 1% strangers accepted 0.924; 5 shots: 1.000 and 0.992
// (edged eval fewshot).
//
// # Concurrency
//
// Readers (Match, MatchMany, Info, ...) use an immutable snapshot and never
// wait; writers rebuild it and swap it atomically, so a matching call sees
// the gallery either before or after a change (also a change of head),
// never half of it. Matching a large gallery scans it on Options.Workers
// goroutines; beyond Options.ExactLimit clusters a 256-bit binary code
// ranks the entries first and only the best Options.Candidates get exact
// distances (see BenchmarkMatch).
package gallery
