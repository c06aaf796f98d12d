package agent

import "github.com/kith-project/kith/seed"

// closeDevices closes every connection, accepted or dialed, to the devices.
func (a *Agent) closeDevices(ids []seed.DevicePublic) {
	for _, id := range ids {
		a.tr.ClosePeer(id.Ed25519())
	}
}
