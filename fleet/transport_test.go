package fleet

import "github.com/edged-dev/edged/mqtt"

// The daemon's MQTT client is a Transport (and tells the fleet about
// reconnections).
var (
	_ Transport       = (*mqtt.Client)(nil)
	_ ConnectNotifier = (*mqtt.Client)(nil)
)
