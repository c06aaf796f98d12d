package control

import (
	"time"

	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// Identifiers in answers are typed (seed.UserPublic, seed.DevicePublic) and
// travel as the same lowercase hex as before; kinds and statuses are the
// roster's. Requests carry what a person typed, as strings, which the agent
// parses and refuses with a clear message.

// IDResult is who the agent's device is: the answer to [RouteID] ("kith id").
type IDResult struct {
	UserID           seed.UserPublic   `json:"user_id"`
	DeviceID         seed.DevicePublic `json:"device_id"`
	DeviceIndex      uint32            `json:"device_index"`
	Name             string            `json:"name"`
	ArchiveRecipient string            `json:"archive_recipient"`
	// Version is the running agent's build version ("kith version").
	Version string `json:"version,omitempty"`
}

// Status is the agent's view of itself, its peers and its cluster: the
// answer to [RouteStatus] ("kith status").
type Status struct {
	UserID      seed.UserPublic   `json:"user_id"`
	DeviceID    seed.DevicePublic `json:"device_id"`
	Name        string            `json:"name"`
	Listen      string            `json:"listen"`
	PublicAddrs []string          `json:"public_addrs"`
	Quiet       bool              `json:"quiet"`
	Heartbeat   string            `json:"heartbeat"`
	Uptime      string            `json:"uptime"`
	Peers       []PeerStatus      `json:"peers"`
	Cluster     ClusterView       `json:"cluster"`
	// NAT is the NAT type this device sees: "none", "easy", "hard" or
	// "unknown" (see [Netcheck]).
	NAT string `json:"nat"`
	// Relay is what this device relays for others (kith run --relay).
	Relay RelayStatus `json:"relay"`
	// Revoked is set once this device learned that its user revoked it;
	// RevokedMessage then says what to do.
	Revoked        bool   `json:"revoked,omitempty"`
	RevokedMessage string `json:"revoked_message,omitempty"`
}

// RelayStatus is this device's relay service in "kith status": its
// policy, the sessions it relays now, and the bytes it forwarded and
// dropped since it started; QuotaUsed counts towards QuotaBytes per day.
type RelayStatus struct {
	Policy     string `json:"policy"`
	Sessions   int    `json:"sessions"`
	Forwarded  uint64 `json:"forwarded_bytes"`
	Dropped    uint64 `json:"dropped"`
	RateBytes  uint64 `json:"rate_bytes"`
	QuotaBytes uint64 `json:"quota_bytes"`
	QuotaUsed  uint64 `json:"quota_used_bytes"`
}

// Peer returns the peer with the device ID, if the status lists it.
func (st Status) Peer(device seed.DevicePublic) (PeerStatus, bool) {
	for _, p := range st.Peers {
		if p.DeviceID == device {
			return p, true
		}
	}
	return PeerStatus{}, false
}

// PeerStatus is one known device in "kith status".
type PeerStatus struct {
	DeviceID seed.DevicePublic `json:"device_id"`
	UserID   seed.UserPublic   `json:"user_id"`
	Name     string            `json:"name"`
	Kind     roster.Kind       `json:"kind"`
	Addr     string            `json:"addr"`
	LastSeen *time.Time        `json:"last_seen"`
	Online   bool              `json:"online"`
	// RTTMillis and ClockOffsetMillis are null until a heartbeat reply
	// measured them.
	RTTMillis         *float64 `json:"rtt_ms"`
	ClockOffsetMillis *float64 `json:"clock_offset_ms"`
	// Path is how the peer is reached at Addr: "direct", "lan", "punched"
	// or "relay" (through the device named in Via); empty with no address.
	Path string `json:"path,omitempty"`
	Via  string `json:"via,omitempty"`
}

// ClusterView is the own cluster's state (package cluster): raft's state
// on this device (leader, follower, candidate; "starting" before the
// cluster runs), the leader's device ID ("" without one), the voters and
// non-voters by device ID, and the writes waiting for quorum.
type ClusterView struct {
	State     string   `json:"state"`
	Leader    string   `json:"leader"`
	Term      uint64   `json:"term"`
	Voters    []string `json:"voters"`
	Nonvoters []string `json:"nonvoters"`
	Pending   int      `json:"pending"`
}

// MaxInviteTTL is the longest lifetime an invite may be asked for in a
// [ShowRequest], the same bound as agent.MaxInviteTTL.
const MaxInviteTTL = 24 * time.Hour

// ShowRequest asks for a new invite ([RoutePairShow]).
type ShowRequest struct {
	// TTL overrides the invite's lifetime (the agent's default when 0).
	TTL time.Duration `json:"ttl,omitempty"`
}

// ShowResult is a new invite: the answer to "pair show".
type ShowResult struct {
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ScanRequest hands the agent a scanned code ([RoutePairScan]).
type ScanRequest struct {
	Code string `json:"code"`
}

// Pairing statuses, in [ScanResult.Status].
const (
	PairPaired  = "paired"  // both sides scanned: the pairing is stored
	PairWaiting = "waiting" // the other side has yet to scan this device's code
)

// ScanResult is the answer to "pair scan" and to [RoutePairWait].
type ScanResult struct {
	// UserID and Name are the other user's; while waiting on a version 2
	// invite they are known once the other device answered, and zero
	// before.
	UserID seed.UserPublic `json:"user_id"`
	Name   string          `json:"name"`
	Kind   roster.Kind     `json:"kind"`
	SAS    string          `json:"sas"`
	Status string          `json:"status"`
	// Unreachable, while waiting, says why the other device could not be
	// reached yet. The scan is recorded all the same: the pairing
	// completes when the other side scans this device's code.
	Unreachable string `json:"unreachable,omitempty"`
}

// WaitRequest names the scanned code whose pairing to wait for
// ([RoutePairWait]).
type WaitRequest struct {
	Code string `json:"code"`
}

// FriendView is one friend as "kith friends" shows it ([RouteFriends]).
type FriendView struct {
	UserID   seed.UserPublic `json:"user_id"`
	Name     string          `json:"name"`
	Status   roster.Status   `json:"status"`
	SAS      string          `json:"sas,omitempty"`
	PairedAt *time.Time      `json:"paired_at,omitempty"`
	Devices  []DeviceView    `json:"devices"`
}

// DeviceView is one device of a friend.
type DeviceView struct {
	DeviceID seed.DevicePublic `json:"device_id"`
	Name     string            `json:"name"`
	Addr     string            `json:"addr"`
	Online   bool              `json:"online"`
}

// FriendAction is what "kith friends ACTION USER" does to a friend.
type FriendAction string

// The friend actions, each with its route.
const (
	FriendBlock   FriendAction = "block"   // drop their packets, store nothing of theirs
	FriendUnblock FriendAction = "unblock" // be friends again
	FriendRemove  FriendAction = "remove"  // forget them and their devices
)

// FriendActions lists every friend action.
var FriendActions = []FriendAction{FriendBlock, FriendUnblock, FriendRemove}

// FriendRequest names a user for a friend action.
type FriendRequest struct {
	UserID string `json:"user_id"`
}

// FriendStatus is the answer to a friend action: the user and what they
// are now ("friend", "blocked" or "removed").
type FriendStatus struct {
	UserID seed.UserPublic `json:"user_id"`
	Status string          `json:"status"`
}

// RelayRequest asks for a relayed path to a device ([RouteRelay], "kith
// relay"). Device and Via are what the person typed: a device's name, the
// start of its ID, or its full ID.
type RelayRequest struct {
	Device string `json:"device"`
	// Via names the relay; empty means the best one (own devices that are
	// online first, then friends').
	Via string `json:"via,omitempty"`
	// Echo, if set, is sent over the path to the device, which sends it
	// back: a check that the path carries data end to end.
	Echo string `json:"echo,omitempty"`
}

// MaxRelayEcho bounds RelayRequest.Echo, in bytes.
const MaxRelayEcho = 1024

// RelayResult is the path set up: the device, the relay's name, the path
// ("relay") and the virtual address the device is reached at, and, for an
// echo, its round trip.
type RelayResult struct {
	DeviceID   seed.DevicePublic `json:"device_id"`
	Via        string            `json:"via"`
	Path       string            `json:"path"`
	Addr       string            `json:"addr"`
	EchoMillis *float64          `json:"echo_ms"`
}
