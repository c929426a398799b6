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
// its AUC; VerifyROCPNG draws the curve with the standard library.
//
// Few-shot open-set identification (fewshot.go): FewShotScore and friends.
package eval
