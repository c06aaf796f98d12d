package pairing

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"unicode/utf8"
)

// Labels of the handshake; versioned, and NUL-terminated where they are
// followed by data, so that no label is a prefix of another.
const (
	transcriptLabel = "kith/v1/pair-transcript\x00"
	proofLabel      = "kith/v1/pair-proof\x00"
	sasInfo         = "kith/v1/sas"
)

// ProofSize is the size of a proof: an HMAC-SHA256.
const ProofSize = sha256.Size

// Reply statuses.
const (
	StatusPaired  = "paired"  // both sides scanned and proved it: the pairing is done
	StatusWaiting = "waiting" // the replier's user has not scanned the sender's code yet
	StatusRefused = "refused" // see Reply.Reason
)

// Limits on a Profile, generous for what it carries.
const (
	maxNameLen    = 256
	maxCertLen    = 8192
	maxProfAddrs  = 2 * MaxAddrsV1
	windowSize    = 32
	maxAddrStrLen = 64
)

// Hello is the first message on a pairing stream, sent by a device that
// scanned the other's invite. Its JSON form is what travels.
type Hello struct {
	// Invite is the sender's own invite code, the one the receiver's user
	// scans (or scanned).
	Invite string `json:"invite"`
	// Proof is HMAC-SHA256 keyed with the receiver's invite secret; see the
	// package comment.
	Proof []byte `json:"proof"`
	// Profile is filled in by the caller; the receiver uses it only once
	// its Machine is Done.
	Profile *Profile `json:"profile,omitempty"`
}

// Reply answers a Hello.
type Reply struct {
	Status string `json:"status"`           // StatusPaired, StatusWaiting or StatusRefused
	Reason string `json:"reason,omitempty"` // for StatusRefused: a word from Reason
	// Proof is the replier's proof, present exactly when Status is
	// StatusPaired.
	Proof []byte `json:"proof,omitempty"`
	// Profile is filled in by the caller, and only when Status is
	// StatusPaired.
	Profile *Profile `json:"profile,omitempty"`
}

// Profile is what two devices tell each other about themselves once paired.
// This package checks only its shape; the agent checks the certificate.
type Profile struct {
	Name string `json:"name"`
	// Cert is the sender's device certificate, opaque here.
	Cert []byte `json:"cert,omitempty"`
	// Window is the sender's 32-byte presence window secret (DESIGN §5),
	// sent only to friends and own devices. It never prints.
	Window []byte `json:"window,omitempty"`
	// Addrs are further addresses of the sender, as "host:port".
	Addrs []string `json:"addrs,omitempty"`
}

// Validate checks the shape of a profile received from a peer. Its errors
// wrap ErrMalformed.
func (p *Profile) Validate() error {
	if p == nil {
		return nil
	}
	bad := func(format string, args ...any) error {
		return refuse(ErrMalformed, "the other device sent a malformed profile: "+format, args...)
	}
	switch {
	case len(p.Name) > maxNameLen:
		return bad("its name is %d bytes, more than %d", len(p.Name), maxNameLen)
	case !utf8.ValidString(p.Name):
		return bad("its name is not UTF-8")
	case len(p.Cert) > maxCertLen:
		return bad("its certificate is %d bytes, more than %d", len(p.Cert), maxCertLen)
	case len(p.Window) != 0 && len(p.Window) != windowSize:
		return bad("its window secret is %d bytes, want %d", len(p.Window), windowSize)
	case len(p.Addrs) > maxProfAddrs:
		return bad("it lists %d addresses, more than %d", len(p.Addrs), maxProfAddrs)
	}
	for k, a := range p.Addrs {
		if len(a) > maxAddrStrLen {
			return bad("address %d is too long", k+1)
		}
		if _, err := netip.ParseAddrPort(a); err != nil {
			return bad("address %d is not host:port", k+1)
		}
	}
	return nil
}

// String describes the profile without its window secret.
func (p Profile) String() string {
	w := "none"
	if len(p.Window) > 0 {
		w = "redacted"
	}
	return fmt.Sprintf("Profile{name %q, cert %d bytes, window %s, addrs %v}", p.Name, len(p.Cert), w, p.Addrs)
}

// Format prints String for every verb, so that no verb reveals the window
// secret.
func (p Profile) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(p.String())) }

// String describes the message without the invite code, which holds the
// sender's secret.
func (h Hello) String() string {
	return fmt.Sprintf("Hello{invite %d chars, proof %d bytes, profile %v}", len(h.Invite), len(h.Proof), h.Profile)
}

// Format prints String for every verb.
func (h Hello) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(h.String())) }

// LogValue describes the profile in structured logs without its window
// secret.
func (p Profile) LogValue() slog.Value { return slog.StringValue(p.String()) }

// LogValue describes the message in structured logs without the invite code.
func (h Hello) LogValue() slog.Value { return slog.StringValue(h.String()) }

// String describes the reply; its profile prints without the window secret.
func (r Reply) String() string {
	return fmt.Sprintf("Reply{status %q, reason %q, proof %d bytes, profile %v}", r.Status, r.Reason, len(r.Proof), r.Profile)
}

// Format prints String for every verb.
func (r Reply) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(r.String())) }

// LogValue describes the reply in structured logs without the window
// secret.
func (r Reply) LogValue() slog.Value { return slog.StringValue(r.String()) }

// Refusal returns the Reply that refuses a Hello because of err.
func Refusal(err error) Reply {
	return Reply{Status: StatusRefused, Reason: Reason(err)}
}

// Transcript is the hash of the two invites of a pairing; see the package
// comment.
type Transcript [sha256.Size]byte

// transcriptOf hashes the two invites, the one with the lower device ID
// first, so that both sides compute the same value. The caller has made sure
// the device IDs differ.
func transcriptOf(a, b Invite) Transcript {
	if subtleLess(b.Device, a.Device) {
		a, b = b, a
	}
	h := sha256.New()
	h.Write([]byte(transcriptLabel))
	h.Write(a.Bytes())
	h.Write(b.Bytes())
	return Transcript(h.Sum(nil))
}

// subtleLess reports whether x sorts before y, in time independent of where
// they differ (device IDs are public, but the habit costs nothing).
func subtleLess(x, y [32]byte) bool {
	less, decided := 0, 0
	for k := range x {
		lt := subtle.ConstantTimeLessOrEq(int(x[k])+1, int(y[k])) // x[k] < y[k]
		gt := subtle.ConstantTimeLessOrEq(int(y[k])+1, int(x[k])) // x[k] > y[k]
		less |= lt &^ decided
		decided |= lt | gt
	}
	return less == 1
}

// makeProof proves to the device with the given secret that the device own
// scanned its invite.
func makeProof(peerSecret Secret, t Transcript, own [32]byte) []byte {
	m := hmac.New(sha256.New, peerSecret[:])
	m.Write([]byte(proofLabel))
	m.Write(t[:])
	m.Write(own[:])
	return m.Sum(nil)
}

// checkProof verifies, in constant time, that got proves that peer scanned
// the invite whose secret is ours.
func checkProof(ours Secret, t Transcript, peer [32]byte, got []byte) bool {
	return hmac.Equal(makeProof(ours, t, peer), got)
}

// sasOf derives the short authentication string: HKDF-SHA256 with the
// transcript as input key material, no salt and info "kith/v1/sas", 8 bytes
// read as a big-endian integer, modulo 10⁶, printed as two groups of three
// digits.
func sasOf(t Transcript) string {
	k, err := hkdf.Key(sha256.New, t[:], nil, sasInfo, 8)
	if err != nil { // only for lengths beyond 255·32 bytes
		panic("pairing: hkdf: " + err.Error())
	}
	n := binary.BigEndian.Uint64(k) % 1_000_000
	return fmt.Sprintf("%03d %03d", n/1000, n%1000)
}
