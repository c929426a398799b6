package detect

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// RFB-320 input size and normalisation ((x-127)/128, RGB).
const (
	rfbWidth  = 320
	rfbHeight = 240
)

var rfbOutputs = []string{"scores", "boxes"}

func (d *Detector) detectDNN(w *worker, img gocv.Mat) ([]detection, error) {
	blob := gocv.BlobFromImage(img, 1.0/128, image.Pt(rfbWidth, rfbHeight), gocv.NewScalar(127, 127, 127, 0), true, false)
	defer blob.Close()
	w.det.SetInput(blob, "input")
	outs := w.det.ForwardLayers(rfbOutputs)
	defer func() {
		for i := range outs {
			outs[i].Close()
		}
	}()
	if len(outs) != 2 {
		return nil, fmt.Errorf("%w: detector gave %d outputs, want 2", ErrModel, len(outs))
	}
	scores, err := outs[0].DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("detector scores: %w", err)
	}
	boxes, err := outs[1].DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("detector boxes: %w", err)
	}
	n := len(scores) / 2
	if n == 0 || len(boxes) != 4*n {
		return nil, fmt.Errorf("%w: detector outputs %d scores, %d box values", ErrModel, len(scores), len(boxes))
	}
	fw, fh := float32(img.Cols()), float32(img.Rows())
	var dets []detection
	for i := 0; i < n; i++ {
		s := scores[2*i+1]
		if s < d.opts.ScoreThreshold {
			continue
		}
		b := detection{
			x1: clamp(boxes[4*i]*fw, -fw, 2*fw), y1: clamp(boxes[4*i+1]*fh, -fh, 2*fh),
			x2: clamp(boxes[4*i+2]*fw, -fw, 2*fw), y2: clamp(boxes[4*i+3]*fh, -fh, 2*fh),
			score: s,
		}
		if d.keepSize(b) {
			dets = append(dets, b)
		}
	}
	return nms(dets, d.opts.NMSThreshold, d.opts.MaxFaces), nil
}

func (d *Detector) detectHaar(w *worker, img gocv.Mat) []detection {
	grey := gocv.NewMat()
	defer grey.Close()
	gocv.CvtColor(img, &grey, gocv.ColorBGRToGray)
	minSz := image.Pt(d.opts.MinFace, d.opts.MinFace)
	maxSz := image.Pt(0, 0)
	if d.opts.MaxFace > 0 {
		maxSz = image.Pt(d.opts.MaxFace, d.opts.MaxFace)
	}
	rects := w.haar.DetectMultiScaleWithParams(grey, d.opts.HaarScale, d.opts.HaarNeighbors, 0, minSz, maxSz)
	dets := make([]detection, 0, len(rects))
	for _, r := range rects {
		// The cascade has no confidence; every box it returns counts as 1.
		b := haarToRFB(r)
		b.score = 1
		if d.keepSize(b) {
			dets = append(dets, b)
		}
	}
	return nms(dets, d.opts.NMSThreshold, d.opts.MaxFaces)
}

// haarToRFB maps a cascade box onto the box RFB-320 would give for the same
// face, the box the landmark model expects: on 391 LFW faces found by both,
// the medians were: same centre (y +0.4%), width x0.80, height x1.13.
func haarToRFB(r image.Rectangle) detection {
	w, h := float32(r.Dx()), float32(r.Dy())
	cx, cy := float32(r.Min.X)+w/2, float32(r.Min.Y)+h/2+0.004*h
	w, h = 0.80*w, 1.13*h
	return detection{x1: cx - w/2, y1: cy - h/2, x2: cx + w/2, y2: cy + h/2}
}
