package pairing

import (
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"time"
)

// maxPending bounds the Hellos a Machine keeps while its user has not
// scanned yet. Only someone who saw the QR code can send one that verifies,
// so more than one is rare; a few let the right one through if a bystander
// photographed the code and raced.
const maxPending = 4

// Machine runs the pairing for one of this device's invites. It does no I/O:
// the agent carries its Hellos and Replies over a QUIC stream authenticated
// by the peer's device key, and stores the result once Done.
//
// A Machine is safe for concurrent use: the user's scan and the peer's
// connection arrive on different goroutines.
type Machine struct {
	// Constant after NewMachine.
	ours Invite
	err  error // non-nil if ours is not this device's own invite; every method returns it

	mu sync.Mutex
	// Guarded by mu.
	scanned  bool       // the user scanned peer
	peer     Invite     // valid once scanned
	t        Transcript // of ours and peer, once scanned
	ourProof []byte     // of peer's secret, once scanned
	done     bool       // scanned and peer's proof verified; ours is consumed
	profile  *Profile   // the peer's, once done
	pending  []pending  // verified Hellos from before the scan
}

// pending is a Hello whose proof verified before this device's user scanned
// any code; it completes the pairing if the user then scans its invite.
type pending struct {
	invite  Invite
	bytes   []byte
	profile *Profile
}

// NewMachine starts the pairing for ours, an invite made by this device,
// whose private key is self. If ours was not made and signed by self, every
// method of the Machine returns an error saying so.
func NewMachine(ours Invite, self ed25519.PrivateKey) *Machine {
	m := &Machine{ours: ours}
	switch {
	case len(self) != ed25519.PrivateKeySize:
		m.err = fmt.Errorf("pairing: device key is %d bytes, want %d", len(self), ed25519.PrivateKeySize)
	case subtle.ConstantTimeCompare(self.Public().(ed25519.PublicKey), ours.Device[:]) != 1:
		m.err = errors.New("pairing: the invite was not made by this device's key")
	case ours.check() != nil:
		m.err = fmt.Errorf("pairing: this device's invite: %w", ours.check())
	case ours.Version == InviteVersion1 && !ed25519.Verify(ours.Device[:], signedMessage(ours.appendUnsigned(nil)), ours.Sig[:]):
		m.err = errors.New("pairing: this device's invite is not signed by its key")
	}
	return m
}

// Scanned records that this device's user scanned peer, the other device's
// invite (from ParseInvite), and returns the Hello to send to that device,
// for the caller to fill in the Profile. If a verified Hello from that device
// had arrived already, the pairing is now Done.
//
// Scanning the same invite again returns the same Hello, so that the caller
// can retry the connection, even after Done: the answer that would have
// let the caller store the pairing may have been lost while the other side
// stored it, and the other side answers the same Hello as paired again.
// Scanning a second, different invite is refused with ErrReused: each
// pairing needs a fresh invite.
func (m *Machine) Scanned(peer Invite, now time.Time) (Hello, error) {
	if m.err != nil {
		return Hello{}, m.err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.scanned {
		if m.peer.Equal(peer) {
			return Hello{Invite: m.ours.Encode(), Proof: m.ourProof}, nil
		}
		return Hello{}, refuse(ErrReused, "this device's invite was already used with another code: run `kith pair show` for a fresh one")
	}
	if !now.Before(m.ours.Expires) {
		return Hello{}, expired(m.ours.Expires, now, "this device's invite")
	}
	if err := peer.Verify(now); err != nil {
		return Hello{}, err
	}
	if subtle.ConstantTimeCompare(peer.Device[:], m.ours.Device[:]) == 1 {
		return Hello{}, refuse(ErrForeign, "this is this device's own invite: scan the code shown on the other device")
	}
	m.scanned = true
	m.peer = peer
	m.t = transcriptOf(m.ours, peer)
	m.ourProof = makeProof(peer.Secret, m.t, m.ours.Device)
	pb := peer.Bytes()
	for _, p := range m.pending {
		if subtle.ConstantTimeCompare(p.bytes, pb) == 1 {
			m.done = true
			m.profile = p.profile
		}
	}
	m.pending = nil
	return Hello{Invite: m.ours.Encode(), Proof: m.ourProof}, nil
}

// HandleHello handles a Hello from a device that connected to this one and
// claims to have scanned this device's invite. peerKey is the device key the
// transport authenticated; it must be the key of the invite in the Hello.
//
// The Reply is StatusPaired, with this device's proof, when this device's
// user has scanned that same invite: the pairing is then Done. It is
// StatusWaiting when the user has not scanned yet; the proof is kept and
// completes the pairing when the user scans. On error the Reply is the
// refusal to send back, naming the reason (Refusal).
//
// Once Done, the invite is consumed: a Hello from any other device is
// refused with ErrReused. The paired device itself gets StatusPaired again,
// since its Hello may cross the one that completed the pairing.
//
// The caller fills in Reply.Profile only when the status is StatusPaired.
func (m *Machine) HandleHello(h Hello, peerKey ed25519.PublicKey, now time.Time) (Reply, error) {
	r, err := m.handleHello(h, peerKey, now)
	if err != nil {
		return Refusal(err), err
	}
	return r, nil
}

func (m *Machine) handleHello(h Hello, peerKey ed25519.PublicKey, now time.Time) (Reply, error) {
	if m.err != nil {
		return Reply{}, m.err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		// The paired peer may send its Hello again: its agent retries, or
		// its Hello crossed ours and arrives after ours completed both
		// sides. It gets the same answer. Anyone else finds the invite used.
		if m.isPairedPeer(h, peerKey) {
			return Reply{Status: StatusPaired, Proof: m.ourProof}, nil
		}
		return Reply{}, refuse(ErrReused, "this device's invite was already used: ask for a fresh code")
	}
	if !now.Before(m.ours.Expires) {
		return Reply{}, expired(m.ours.Expires, now, "this device's invite")
	}
	theirs, err := ParseInvite(h.Invite, now)
	if err != nil {
		return Reply{}, fmt.Errorf("pairing: the invite the other device sent: %w", err)
	}
	if len(peerKey) != ed25519.PublicKeySize || subtle.ConstantTimeCompare(peerKey, theirs.Device[:]) != 1 {
		return Reply{}, refuse(ErrForeign, "the device that connected is not the device of the invite it sent")
	}
	if subtle.ConstantTimeCompare(theirs.Device[:], m.ours.Device[:]) == 1 {
		return Reply{}, refuse(ErrForeign, "the device that connected presented this device's own invite")
	}
	if err := h.Profile.Validate(); err != nil {
		return Reply{}, err
	}
	t := transcriptOf(m.ours, theirs)
	if !checkProof(m.ours.Secret, t, theirs.Device, h.Proof) {
		return Reply{}, refuse(ErrForeign, "the other device does not prove it scanned this device's invite: each side must scan the code shown on the other")
	}
	tb := theirs.Bytes()
	if m.scanned {
		if subtle.ConstantTimeCompare(tb, m.peer.Bytes()) != 1 {
			return Reply{}, refuse(ErrForeign, "the device that connected is not the one whose code was scanned here: check that each side scanned the other's code")
		}
		m.done = true
		m.profile = h.Profile
		m.pending = nil
		return Reply{Status: StatusPaired, Proof: m.ourProof}, nil
	}
	for k := range m.pending {
		if subtle.ConstantTimeCompare(m.pending[k].bytes, tb) == 1 {
			m.pending[k].profile = h.Profile
			return Reply{Status: StatusWaiting}, nil
		}
	}
	if len(m.pending) >= maxPending {
		// Bystanders who photographed the code filled the list. The Hello
		// is answered as waiting, and not kept: should it come from the
		// device whose code this user will scan, the pairing completes all
		// the same, when this device's Hello reaches that device, which has
		// scanned ours. A refusal here would tell the real partner its
		// pairing failed while it goes on to succeed.
		return Reply{Status: StatusWaiting}, nil
	}
	m.pending = append(m.pending, pending{invite: theirs, bytes: tb, profile: h.Profile})
	return Reply{Status: StatusWaiting}, nil
}

// isPairedPeer reports whether h, from peerKey, is a valid Hello from the
// peer this Machine paired with. It checks neither expiry: the pairing is
// done.
func (m *Machine) isPairedPeer(h Hello, peerKey ed25519.PublicKey) bool {
	theirs, err := decodeInvite(h.Invite)
	return err == nil &&
		subtle.ConstantTimeCompare(theirs.Bytes(), m.peer.Bytes()) == 1 &&
		subtle.ConstantTimeCompare(peerKey, m.peer.Device[:]) == 1 &&
		checkProof(m.ours.Secret, m.t, m.peer.Device, h.Proof)
}

// HandleReply handles the Reply to the Hello that Scanned returned. The
// caller must have received it on a stream to the scanned invite's device,
// authenticated by that device's key.
//
// StatusPaired must carry a proof that verifies; the pairing is then Done.
// StatusWaiting changes nothing: the other side completes the pairing by
// scanning, and its Hello reaches HandleHello. StatusRefused returns an
// error wrapping ErrRefused and, when the reason is known, its sentinel.
func (m *Machine) HandleReply(r Reply, now time.Time) error {
	if m.err != nil {
		return m.err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.scanned {
		return errors.New("pairing: a reply arrived before this device scanned any code")
	}
	switch r.Status {
	case StatusWaiting:
		return nil
	case StatusRefused:
		return remoteRefusal(r.Reason)
	case StatusPaired:
	default:
		return fmt.Errorf("pairing: the other device replied with unknown status %.20q: update kith on both devices", r.Status)
	}
	if !checkProof(m.ours.Secret, m.t, m.peer.Device, r.Proof) {
		return refuse(ErrForeign, "the other device's reply does not prove it scanned this device's invite: each side must scan the code shown on the other")
	}
	if err := r.Profile.Validate(); err != nil {
		return err
	}
	m.done = true
	if r.Profile != nil {
		m.profile = r.Profile
	}
	return nil
}

// Done reports whether the pairing is complete: this device's user scanned
// the peer's invite and the peer proved it scanned this device's invite.
func (m *Machine) Done() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done
}

// SAS returns the short authentication string both users compare, such as
// "042 917", once the peer's invite is scanned; "" before.
func (m *Machine) SAS() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.scanned {
		return ""
	}
	return sasOf(m.t)
}

// Peer returns the scanned invite of the other device; the zero Invite
// before the scan.
func (m *Machine) Peer() Invite {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.scanned {
		return Invite{}
	}
	return m.peer
}

// PeerProfile returns the profile the peer sent, once Done; nil before, and
// nil if the peer sent none.
func (m *Machine) PeerProfile() *Profile {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.done {
		return nil
	}
	return m.profile
}

// remoteError is a refusal received from the other device.
type remoteError struct {
	kind error // a sentinel, or nil for a reason this version does not know
}

func (e *remoteError) Error() string {
	what := "for a reason this kith version does not know: update kith on both devices"
	switch e.kind {
	case ErrMalformed:
		what = "it could not read this device's invite: ask for fresh codes and scan again"
	case ErrTampered:
		what = "an invite was altered or damaged: ask for fresh codes and scan again"
	case ErrExpired:
		what = "an invite expired: ask for fresh codes and scan again"
	case ErrReused:
		what = "its invite was already used: ask for a fresh code"
	case ErrForeign:
		what = "the codes do not match: each side must scan the code shown on the other"
	case ErrBlocked:
		what = "it does not accept pairing with this user"
	case ErrStorage:
		what = "it could not save the pairing (is its disk full?): make room on that device, then pair again with fresh codes"
	}
	return "pairing: the other device refused the pairing: " + what
}

func (e *remoteError) Unwrap() []error {
	if e.kind == nil {
		return []error{ErrRefused}
	}
	return []error{e.kind, ErrRefused}
}

func remoteRefusal(reason string) error {
	kind := reasonErr(reason)
	if kind == ErrRefused {
		kind = nil
	}
	return &remoteError{kind: kind}
}
