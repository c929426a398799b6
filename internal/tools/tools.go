//go:build tools

// Package tools pins the modules edged's packages depend on, so go.mod lists
// them even while a package that imports them is being written.
package tools

import (
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/mochi-mqtt/server/v2"
	_ "gopkg.in/yaml.v3"
)
