package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/edged-dev/edged/detect"
	"github.com/edged-dev/edged/enroll"
	"github.com/edged-dev/edged/gallery"
	"github.com/edged-dev/edged/infer"
	"github.com/edged-dev/edged/store"
)

func init() {
	register(&Command{
		Name: "enroll",
		Usage: "--name NAME [--person ID] [--data DIR] [--models DIR] [--backbone ID] [--json] [--all-or-nothing] [--keep-chips] IMAGE...\n" +
			"       edged enroll --unknown unknown-N --name NAME   (name an unknown-face cluster)\n" +
			"  (the daemon must be stopped: it holds the store; use its MQTT enroll command instead)",
		Short: "enroll a person from photos (detect, align, refuse poor faces with the reason, embed, store)",
		Run:   runEnroll,
	})
}

// newFaceModels opens the detector (aligning to the backbone's template)
// and the backbone's embedder.
func newFaceModels(models string, bb *infer.Backbone, workers int, logger *slog.Logger) (*detect.Detector, *infer.Embedder, error) {
	do := detect.DefaultOptions(models)
	do.Workers, do.Logger, do.Template = workers, logger, bb.Template
	det, err := detect.New(do)
	if err != nil {
		return nil, nil, err
	}
	emb, err := infer.NewEmbedder(models, infer.Options{Backbone: bb.ID, Logger: logger})
	if err != nil {
		det.Close()
		return nil, nil, err
	}
	return det, emb, nil
}

func runEnroll(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	sf := addStoreCLIFlags(fs)
	name := fs.String("name", "", "the person's name (an existing person of that name gets the new samples)")
	person := fs.String("person", "", "add the samples to the person with this id")
	unknown := fs.String("unknown", "", "enroll the faces kept in this unknown-face cluster (unknown-N) instead of images")
	models := fs.String("models", defaultModelDir(), "model directory")
	backbone := addBackboneFlag(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	strict := fs.Bool("all-or-nothing", false, "enroll nothing when any image is refused")
	keepChips := fs.Bool("keep-chips", false, "also store the face chips (off by default: privacy)")
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if *name == "" && *person == "" {
		return exitUsage, usageError("--name or --person is required")
	}
	if *unknown == "" && len(files) == 0 {
		return exitUsage, usageError("no images given")
	}
	if *unknown != "" && len(files) > 0 {
		return exitUsage, usageError("--unknown takes no images")
	}
	bb, err := sf.backbone(*backbone)
	if err != nil {
		return exitUsage, err
	}
	keepCrops, err := sf.keepCrops()
	if err != nil {
		return exitStartup, err
	}
	var images []enroll.Image
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return exitFailure, fmt.Errorf("read %s: %w", path, err)
		}
		images = append(images, enroll.Image{Name: filepath.Base(path), Data: data})
	}
	st, code, err := sf.open(false)
	if err != nil {
		return code, err
	}
	defer st.Close()
	logger := sf.logger()
	g := gallery.New(gallery.Options{Space: bb.Space, Logger: logger})
	proj, err := enroll.ActiveProjector(st, bb.ID)
	if err != nil {
		return exitStartup, err
	}
	if err := g.SetProjector(proj); err != nil {
		return exitStartup, err
	}
	var res enroll.Result
	if *unknown != "" {
		en := enroll.New(st, g, nil, nil, enroll.Options{Backbone: bb.ID, Logger: logger})
		res, err = en.EnrollUnknown(ctx, *unknown, *name, *person)
	} else {
		det, emb, ferr := newFaceModels(*models, bb, 1, logger)
		if ferr != nil {
			return exitStartup, ferr
		}
		defer det.Close()
		defer emb.Close()
		en := enroll.New(st, g, det, emb, enroll.Options{Backbone: bb.ID, KeepChips: *keepChips, DropCrops: !keepCrops, Logger: logger})
		res, err = en.Enroll(ctx, enroll.Request{Name: *name, PersonID: *person, Images: images, Source: store.SourceFile, AllOrNothing: *strict})
	}
	if *asJSON {
		out := struct {
			enroll.Result
			Error *enrollErrorJSON `json:"error,omitempty"`
		}{Result: res}
		if err != nil {
			out.Error = &enrollErrorJSON{Code: enroll.CodeOf(err), Message: err.Error()}
		}
		if e := json.NewEncoder(os.Stdout).Encode(out); e != nil {
			return exitFailure, e
		}
	} else {
		printEnrollResult(res, err)
	}
	switch {
	case err != nil && errors.Is(err, enroll.ErrInternal):
		return exitFailure, err
	case err != nil:
		return exitFailure, fmt.Errorf("nothing enrolled: %s", enroll.CodeOf(err))
	case res.Refused > 0:
		return exitFailure, fmt.Errorf("%d of %d images refused", res.Refused, res.Refused+res.Accepted)
	}
	return exitOK, nil
}

type enrollErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func printEnrollResult(res enroll.Result, err error) {
	for _, ir := range res.Images {
		if ir.Accepted {
			fmt.Printf("  ok       %s (quality %.2f)\n", ir.Name, ir.Quality)
		} else {
			fmt.Printf("  refused  %s: %s [%s]\n", ir.Name, ir.Reason, ir.Code)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "enrollment failed [%s]: %v\n", enroll.CodeOf(err), err)
		return
	}
	verb := "added to"
	if res.Created {
		verb = "created"
	}
	from := ""
	if res.Unknown != "" {
		from = " from " + res.Unknown
	}
	fmt.Printf("%s %s %q%s: %d new samples, %d in total, %d cluster%s\n", verb, res.PersonID, res.Name, from,
		res.Accepted, res.Samples, res.Clusters, map[bool]string{true: "", false: "s"}[res.Clusters == 1])
}
