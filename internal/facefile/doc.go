// Package facefile finds and embeds the faces of image files, for the
// commands that work on files (`edged embed`, `edged detect`, `edged eval
// lfw`): a Pipeline of the detector and the embedder over files, the fixed
// centre crop (LFW's convention, no detection), aligned chip files
// embedded in batches, the expansion of paths, folders and a list file into
// image files, and a runner that processes files on several goroutines and
// writes one line per file in input order. Output formats are the
// caller's: the runner writes the lines it is given.
//
// It is native: detect (GoCV) and infer (TensorFlow).
//
// # Usage
//
//	p, err := facefile.Open(facefile.Options{Models: dir, Backbone: bb, Crop: facefile.CropAligned})
//	defer p.Close()
//	paths, err := facefile.Inputs(args, listFile, os.Stdin)
//	failed, err := facefile.RunOrdered(ctx, paths, workers, func(path string) ([]byte, bool) {
//		faces, embs, err := p.EmbedFile(path)
//		// format one line
//	}, os.Stdout, bar)
package facefile
