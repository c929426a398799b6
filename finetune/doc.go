// Package finetune is edged's metric learning in TensorFlow: contrastive and
// triplet losses with online mining, built as graph code with the op API,
// differentiated with Graph.AddGradients and optimised with the graph's own
// update ops (ResourceApplyAdam / ResourceApplyMomentum on resource
// variables); the on-device fine-tune job with its guard; and the offline
// training behind `edged train`.
//
// # Losses (losses.go)
//
//   - Contrastive(s, a, b, y, m): L = mean (1-Y) D^2/2 + Y max(0, m-D)^2/2,
//     Y = 0 same person, 1 different. BuildPairs makes the pairs with a
//     controlled positive:negative ratio (default 1:3).
//   - TripletLoss(s, emb, labels, o): max(0, d(a,p) - d(a,n) + alpha) on
//     plain or squared distances, mined inside a P x K batch (PKBatches):
//     BatchAll (mean over the triplets with a positive loss), BatchHard
//     (hardest positive and negative per anchor), SemiHard (FaceNet: the
//     nearest negative farther than the positive; TF-Addons' fallback to the
//     farthest negative when there is none). Triplet.Selected exposes the
//     mined triplets as a [B,B,B] mask, so tests can check the selection.
//
// Both are tested on hand-computed inputs, against a brute-force Go
// reference on random batches, and their gradients against central finite
// differences (float64 graphs).
//
// # Model and Trainer (trainer.go)
//
// The model is the frozen backbone of package infer, a head (package head:
// Dim x Dim linear from the identity, optional PReLU + second layer, L2
// normalisation) and, with TrainerOptions.Unfreeze, the backbone's last
// residual stage and FC layer, built by infer.BuildStages with a ParamFunc
// that turns those weights into variables (the network is defined once, in
// infer). An L2 pull toward the initial parameters (AnchorDecay) keeps
// few-shot training near the frozen network. A Trainer runs one session
// with its own thread pool (Threads, default 1), so training beside the
// live pipeline does not take every core. Checkpoints (SaveCheckpoint /
// LoadCheckpoint) hold parameters, optimiser slots and the step count,
// written atomically with a checksum; TrainOffline resumes bit-exactly.
//
// # The on-device job (job.go)
//
//	job := finetune.NewJob(st, gallery, finetune.JobOptions{OnProgress: publish})
//	go job.Run(ctx)  // background worker: one job at a time
//	job.Trigger()    // after each enrollment; several in a row -> one job
//	id, err := job.RunNow(nil)   // a job now, through Run (a command)
//	res, err := job.RunOnce(ctx) // or run one here (eval, tests)
//
// Run reports each job it runs through OnStart, OnProgress, and OnResult or
// OnError (the daemon publishes them on events/finetune).
//
// A job trains on the raw backbone embeddings already in the store (no
// image is processed again) with contrastive loss on balanced pairs
// (triplet optional), then asks the guard. The guard cross-validates over
// people (Folds, default 3): in each fold a third of the people are held
// out entirely and play the strangers, and Holdout of every other person's
// samples are the known probes. It measures, for the active head and the
// fold's new head, top-1, open-set DIR at FAR 1% and 0.1%, TAR at FAR 1%,
// open-set and verification AUC, and 1:1 verification among the held-out
// people ("unseen": does the head still generalise to identities it never
// saw?). Only when no metric, averaged over the folds, got worse is the
// head trained the same way on every sample stored (with the metrics)
// and activated in one transaction, and the gallery switched to it
// (Projectable.SetHead; the gallery re-projects atomically). Otherwise the
// old head stays and Result.Reason says which metric got worse by how
// much. A cancelled job stores nothing.
//
// Why people are held out and not only samples: on LFW a head fine-tuned
// on 46 enrolled people always looked perfect on their held-out photos, yet
// let far more strangers in at 0.1% FAR; only data from people the head
// never saw shows that (see BENCHMARKS.md / the closing note).
//
// # Experience (experience.go)
//
// A device sees its own camera's domain all day (night infrared, small
// faces, noise, compression), and its tracks label themselves: once a
// track is recognised with high confidence, its frames are in-domain faces
// of that person (store.Experience, filed by service.Experience; the
// gallery keeps them in clusters of their own). The job trains on them
// across domains with contrastive loss (BuildDomainPairs): positives are
// an enrollment photo with an in-domain frame of the same person, the
// frames of one track, and the enrollment photos of one person; negatives
// (NegativesPerPositive per positive) are other people in either domain
// and the unknown-face clusters (in-domain strangers), StrangerShare of
// them. The head is linear (one 192x192 layer from the identity, with
// bias): a domain shift in embedding space (night moves every face the
// same way, plus a rotation of what carries identity) is undone by a
// linear map near the identity, which few samples can fit without
// forgetting; a PReLU second layer (Trainer.Layers 2) is the option, and
// MobileFaceNet's depthwise last stage is not unfrozen (TrainerOptions.
// Unfreeze is dlib's ResNet only).
//
// The guard holds out whole tracks (Holdout of each person's tracks) as
// in-domain known probes, besides Holdout of the enrollment samples and a
// third of the people and of the unknown clusters as strangers, and
// measures each fold with a real gallery built the daemon's way (the
// fold's samples, its experience as experience clusters, the threshold it
// fits itself in the measured space): Frozen (no experience), Experienced
// (the frozen network with the experience: the gain of the experience
// alone), Before (the active head with it) and After (the candidate with
// it: the fine-tune's own gain). The candidate is activated only when no
// guarded metric is worse than Before (nor than Experienced when a head is
// active) and it lets no more strangers in at the gallery's own threshold.
// A head records its DistanceScale (the 1% quantile of impostor distances
// in its space over the raw one), by which the gallery scales its
// calibration prior.
//
// # Offline (dataset.go, extract.go, offline.go)
//
// eval.ScanFolders lists a folder-per-person set; EmbedImages detects the main
// face of each image (enroll.MainFace, as `edged enroll` does), runs the
// backbone once through an Extractor (raw embedding, and the features the
// unfrozen stage takes) and caches the results; TrainOffline trains on
// them with checkpoints. FolderRun (folder.go) is `edged train` put
// together: scan, embed, a people-disjoint split, TrainOffline, the
// evaluation on the held-out people, the head written and stored.
package finetune
