package presence

import (
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Defaults and limits.
const (
	// DefaultInterval is T, the mean time between two heartbeats.
	DefaultInterval = 15 * time.Second
	// MaxClockSkew is how far a heartbeat's send time may be from the
	// receiver's clock, corrected by the measured offset, before the
	// heartbeat is refused as stale.
	MaxClockSkew = 2 * time.Minute
	// OnlineIntervals: a peer is online while its last authenticated
	// packet is at most this many rounds of heartbeats old (a round is n
	// intervals T with n peers; see PeerStatus.Online).
	OnlineIntervals = 3
	// STUNIntervals: we ask for our public address every this many T, and
	// at once when our address changed.
	STUNIntervals = 10

	maxPending   = 8                // heartbeats awaiting a reply, per peer
	maxSamples   = 8                // clock samples kept per peer
	maxPollEvery = 5 * time.Second  // LocalAddrs is polled at least this often
	minWait      = time.Millisecond // Run never spins faster than this
	// clockStep: a clock sample whose offset is this much (plus its RTT)
	// away from the one in use means a clock was stepped.
	clockStep = time.Second
	// maxChallengeGap: at most one heartbeat a min(T/4, this) answers the
	// unsynced heartbeats of one peer.
	maxChallengeGap = time.Second
)

// Config configures a Presence. Key, Book and Send are required; every
// other zero value means its default.
type Config struct {
	// Key is this device's signing key.
	Key ed25519.PrivateKey
	// Interval is T: heartbeats go at uniform random intervals in
	// [T/2, 3T/2]. Default DefaultInterval.
	Interval time.Duration
	// Book is the agent's address book.
	Book Book
	// Send writes one datagram to the agent's UDP socket. It must not block
	// for long, and must not call back into the Presence synchronously.
	Send func(pkt []byte, to netip.AddrPort) error
	// Now is the agent's clock. Default time.Now.
	Now func() time.Time
	// Rand chooses intervals and peers. Default: seeded from crypto/rand.
	Rand *rand.Rand
	// LocalAddrs returns this device's interface addresses with its port.
	// It is polled every heartbeat and at least every T/4 (at most 5 s) to
	// notice changes. Nil means unknown: only peers and STUN then tell us
	// our address.
	LocalAddrs func() []netip.AddrPort
	// STUNServers are the STUN servers to ask for our public address (kith
	// run --stun).
	STUNServers []netip.AddrPort
	// Window is our own user's window secret, needed by Quiet.
	Window []byte
	// Quiet drops packets from unknown addresses outside our windows.
	Quiet bool
	// Logger receives debug logs. Default: discard.
	Logger *slog.Logger
}

// Errors.
var (
	// ErrInvalidConfig: New was given a config it cannot run with.
	ErrInvalidConfig = errors.New("presence: invalid presence config")
	// ErrRunning: Run was called while it was already running.
	ErrRunning = errors.New("presence: presence is already running")
)

func (c *Config) setDefaults() error {
	if len(c.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: the device key is %d bytes, want an ed25519 private key of %d", ErrInvalidConfig, len(c.Key), ed25519.PrivateKeySize)
	}
	if c.Book == nil || c.Send == nil {
		return fmt.Errorf("%w: Book and Send are required", ErrInvalidConfig)
	}
	if c.Quiet && len(c.Window) == 0 {
		return fmt.Errorf("%w: quiet mode needs the user's window secret (Config.Window)", ErrInvalidConfig)
	}
	for _, s := range c.STUNServers {
		if !validAddr(s) {
			return fmt.Errorf("%w: STUN server %q is not a host:port address", ErrInvalidConfig, s)
		}
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		var seed [32]byte
		crand.Read(seed[:])
		c.Rand = rand.New(rand.NewChaCha8(seed))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
