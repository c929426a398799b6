// Package eval computes edged's accuracy figures in pure Go (no cgo): the
// commands that run the network (`edged eval lfw`, `edged eval fewshot`)
// hand it distances and labels and print what it returns.
//
// Verification (verify.go, lfwpairs.go, verify_plot.go): the LFW View 2
// protocol. ParseLFWPairs reads a pairs file (any number of folds);
// VerifyEvaluate takes one VerifyScore per pair and returns the accuracy
// with the threshold chosen by cross-validation over folds (each fold scored
// at the threshold that is best on the others; with a single fold, the best
// threshold of that fold, flagged CrossValidated=false), the mean and
// standard deviation over folds, TAR at FAR 1% and 0.1%, the ROC curve and
// its AUC; VerifyROCPNG draws the curve with the standard library. The
// driver of `edged eval lfw` (lfw.go): LFWVerify embeds every image of the
// pairs once through an LFWEmbed (the command passes the real detector and
// network), scores each pair and returns the LFWReport.
//
// Few-shot open-set identification (fewshot.go): FewShotScore and friends.
// The harness of `edged eval fewshot` (fewshotrun.go): NewFewShot scans and
// splits a folder-per-person set, FewShot.Run embeds every image once
// through an enroll.Finder and enroll.Embedder (the command passes the real
// detector and network), enrolls k images per person into a throw-away
// store and scores the probes. Its fine-tune step is in eval/fewshotft,
// apart because package finetune links TensorFlow.
//
// eval imports neither gocv nor TensorFlow: it builds with CGO_ENABLED=0.
package eval
