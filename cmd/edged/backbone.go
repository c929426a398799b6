package main

import (
	"flag"
	"strings"

	"github.com/edged-dev/edged/infer"
)

// addBackboneFlag adds --backbone, the embedding network, to fs.
func addBackboneFlag(fs *flag.FlagSet) *string {
	return fs.String("backbone", "", "embedding `network`: "+strings.Join(infer.BackboneIDs(), " or ")+
		" (default: the config's model.backbone, else "+infer.DefaultBackbone+")")
}

// lookupBackbone resolves the backbone: the flag when given, else the
// config's model.backbone, else infer.DefaultBackbone. An unknown id is a
// usage error that lists the known ones.
func lookupBackbone(flagValue, configValue string) (*infer.Backbone, error) {
	id := flagValue
	if id == "" {
		id = configValue
	}
	b, err := infer.Lookup(id)
	if err != nil {
		return nil, usageError("--backbone: %v", err)
	}
	return b, nil
}
