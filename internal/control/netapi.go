package control

import (
	"context"
	"net/http"
	"time"

	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// NetBackend is the part of a backend that looks at the network: LAN
// discovery and the network check. A [Backend] that is not one answers
// these routes with an error of kind [KindFailed].
type NetBackend interface {
	// Discover sends a LAN beacon at once and lists the own devices and
	// friends' devices that answered within about two seconds
	// ([RouteDiscover]).
	Discover(ctx context.Context) ([]Discovered, error)
	// Netcheck reports candidates, NAT type, port mapping and the
	// reachability of every friend's and own device, probed now
	// ([RouteNetcheck]).
	Netcheck(ctx context.Context) (Netcheck, error)
}

// Discovered is one device that answered a LAN beacon ("kith discover").
type Discovered struct {
	DeviceID seed.DevicePublic `json:"device_id"`
	UserID   seed.UserPublic   `json:"user_id"`
	Name     string            `json:"name"`
	Kind     roster.Kind       `json:"kind"`
	Addr     string            `json:"addr"`
}

// Netcheck is the answer to [RouteNetcheck] ("kith netcheck").
type Netcheck struct {
	Candidates  []Candidate `json:"candidates"`
	NATType     string      `json:"nat_type"`
	PortMapping PortMapping `json:"port_mapping"`
	// Friends lists every friend who is not blocked, with their devices.
	Friends []FriendReach `json:"friends"`
	// OwnDevices lists this user's other devices.
	OwnDevices []DeviceReach `json:"own_devices"`
}

// Candidate kinds.
const (
	CandidateLocal     = "local"     // an interface address
	CandidateReflexive = "reflexive" // how peers or STUN servers see us
	CandidateMapped    = "mapped"    // the router's port mapping
)

// Candidate is one address this device may be reached at.
type Candidate struct {
	Kind string `json:"kind"`
	Addr string `json:"addr"`
	// Interface names the network interface of a local candidate.
	Interface string `json:"interface,omitempty"`
	// Sources name who reported a reflexive candidate: a peer's name and
	// device ID, or "stun HOST:PORT".
	Sources []string `json:"sources,omitempty"`
}

// PortMapping is the router port mapping, or why there is none.
type PortMapping struct {
	// Protocol is "nat-pmp" when mapped, else empty.
	Protocol  string     `json:"protocol"`
	Gateway   string     `json:"gateway,omitempty"`
	External  string     `json:"external,omitempty"`
	Lifetime  string     `json:"lifetime,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Error says why there is no mapping (turned off, no gateway, refused,
	// no answer).
	Error string `json:"error,omitempty"`
}

// FriendReach is one friend's reachability: reachable if any of their
// devices answered a heartbeat within the check's deadline.
type FriendReach struct {
	UserID    seed.UserPublic `json:"user_id"`
	Name      string          `json:"name"`
	Reachable bool            `json:"reachable"`
	// Path is how the first reachable device is reached ("direct", "lan",
	// "punched", "relay"), empty if none is.
	Path    string        `json:"path"`
	Devices []DeviceReach `json:"devices"`
}

// DeviceReach is one device probed by the network check.
type DeviceReach struct {
	DeviceID  seed.DevicePublic `json:"device_id"`
	Name      string            `json:"name"`
	Addr      string            `json:"addr"`
	Reachable bool              `json:"reachable"`
	RTTMillis *float64          `json:"rtt_ms"`
	Path      string            `json:"path,omitempty"`
	Via       string            `json:"via,omitempty"`
	// Seen is the address this device saw our probe come from.
	Seen string `json:"seen,omitempty"`
	// Error says why a device is unreachable.
	Error string `json:"error,omitempty"`
}

// registerNet serves the NetBackend routes from b.
func registerNet(mux *http.ServeMux, b Backend) {
	type none struct{}
	nb, ok := b.(NetBackend)
	mux.Handle(RouteDiscover, handle(func(ctx context.Context, _ *none) ([]Discovered, error) {
		if !ok {
			return nil, &Error{Kind: KindFailed, Message: "this agent does not do LAN discovery"}
		}
		return nb.Discover(ctx)
	}))
	mux.Handle(RouteNetcheck, handle(func(ctx context.Context, _ *none) (Netcheck, error) {
		if !ok {
			return Netcheck{}, &Error{Kind: KindFailed, Message: "this agent does not check the network"}
		}
		return nb.Netcheck(ctx)
	}))
}

// Discover asks the agent to send a LAN beacon and list who answered.
func (c *Client) Discover(ctx context.Context) ([]Discovered, error) {
	var out []Discovered
	err := c.do(ctx, RouteDiscover, nil, &out)
	return out, err
}

// Netcheck asks the agent to check the network.
func (c *Client) Netcheck(ctx context.Context) (Netcheck, error) {
	var out Netcheck
	err := c.do(ctx, RouteNetcheck, nil, &out)
	return out, err
}
