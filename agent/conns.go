package agent

import "encoding/hex"

// closeDevices closes every connection, accepted or dialed, to the devices.
func (a *Agent) closeDevices(ids []string) {
	for _, id := range ids {
		if key, err := hex.DecodeString(id); err == nil {
			a.tr.ClosePeer(key)
		}
	}
}
