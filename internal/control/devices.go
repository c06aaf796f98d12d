package control

import (
	"context"

	"github.com/kith-project/kith/seed"
)

// OwnDevice is one of this user's devices as "kith devices" shows it
// ([RouteDevices]); this device is among them.
type OwnDevice struct {
	DeviceID    seed.DevicePublic `json:"device_id"`
	DeviceIndex uint32            `json:"device_index"`
	Name        string            `json:"name"`
	Roles       []string          `json:"roles"`
	Addr        string            `json:"addr"`
	Online      bool              `json:"online"`
	Revoked     bool              `json:"revoked"`
	// Self marks this device.
	Self bool `json:"self,omitempty"`
}

// RevokeRequest carries a revocation signed by the user key, derived from
// the seed phrase by the CLI ([RouteDevicesRevoke]); the phrase itself
// never reaches the agent.
type RevokeRequest struct {
	Revocation []byte `json:"revocation"`
}

// RevokeResult is what "kith devices revoke" prints.
type RevokeResult struct {
	DeviceIndex uint32 `json:"device_index"`
	Revoked     bool   `json:"revoked"`
	// Recovered is set when the revocation recovered a cluster that had
	// lost quorum onto these devices.
	Recovered []string `json:"recovered,omitempty"`
}

// Devices lists this user's devices.
func (c *Client) Devices(ctx context.Context) ([]OwnDevice, error) {
	var ds []OwnDevice
	err := c.do(ctx, RouteDevices, nil, &ds)
	return ds, err
}

// DevicesRevoke hands the agent a signed revocation.
func (c *Client) DevicesRevoke(ctx context.Context, req RevokeRequest) (RevokeResult, error) {
	var res RevokeResult
	err := c.do(ctx, RouteDevicesRevoke, req, &res)
	return res, err
}
