package conversation

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/kith-project/kith/seed"
)

// # Envelopes
//
// Everything that travels between devices is an envelope: a genesis (it
// makes a conversation), a message, an outcome (the decision) or an ack.
// Binary form, version 1 (integers big-endian):
//
//	"kith-conv"  9 bytes
//	version      1 byte, 1
//	kind         1 byte: 1 genesis, 2 message, 3 outcome, 4 ack
//	conv         32 bytes, the conversation ID; zero in a genesis
//	seq          8 bytes, the author device's sequence number in the conversation
//	prev         32 bytes, the ID of the author device's previous envelope in it
//	lamport      8 bytes, the Lamport time
//	certlen      2 bytes, then the author device's certificate (package seed)
//	paylen       4 bytes, then the payload
//	signature    64 bytes, Ed25519 by the certificate's device over
//	             "kith/v1/conversation\x00" followed by every byte before it
//
// An envelope's ID (the conversation ID for a genesis, a MessageID
// otherwise) is the SHA-256 of the signed bytes: the context string and
// everything before the signature.
//
// Canonical form, checked by [Inspect] and [Book.Receive]: a genesis has
// a zero conv, seq 0, a zero prev and Lamport 0; a message or an outcome
// has seq 1 with a zero prev or seq > 1 with a non-zero prev, and a
// Lamport time from 1 to MaxLamport; an ack has seq 0, a zero prev and
// Lamport 0. The certificate verifies (signed by its user) and nothing
// follows the signature. Envelopes are at most MaxEnvelopeSize bytes.
//
// The payload of a genesis, a message and an outcome is an age file
// (X25519) sealed to the archive recipient of every member device the
// author knows; see payload.go for what is inside. A forwarder can check
// the signature and the certificate, and learns the conversation, the
// author device and user, the chain position and the kind of envelope —
// nothing of the topic, the members, the bodies or the votes.
//
// The payload of an ack is clear:
//
//	to     32 bytes, the device whose outbox it drains
//	n      2 bytes, 1 to MaxAcked
//	n ×    32 bytes, an acknowledged envelope ID, strictly ascending
//
// An ack is signed by the acknowledging device; it removes only outbox
// items addressed to that device, so a forged ack drains nothing.

// Limits of envelopes and conversations.
const (
	MaxEnvelopeSize    = 4 << 20     // bytes of one envelope
	MaxTopicBytes      = 1024        // bytes of a topic
	MaxBodyBytes       = 16 << 10    // bytes of a message body
	MaxRuleBytes       = 4096        // bytes of a rule's source
	MaxMembers         = 32          // members of a conversation
	MaxRecipients      = 256         // member devices an envelope is sealed to
	MaxMessages        = 5000        // messages (and outcomes) of one conversation
	MaxOpenByOther     = 64          // conversations another user created that a device holds (open, or decided and not archived yet)
	MaxOpenByStrangers = 64          // the same for users who are not friends, together
	MaxAcked           = 1024        // envelope IDs in one ack
	MaxLamport         = 1 << 48     // highest Lamport time
	MaxLamportStep     = MaxMessages // how far above the highest Lamport time stored an envelope may be (held beyond)
	MaxHeld            = 1024        // envelopes held out of order, in all
	MaxHeldPerConv     = 256         // envelopes held out of order, per conversation
	MaxHeldBytes       = 32 << 20    // bytes of envelopes held out of order, in all
	maxPayload         = MaxEnvelopeSize - 256 - 600
	maxKindBytes       = 32
)

const (
	envMagic   = "kith-conv"
	envVersion = 1
	envContext = "kith/v1/conversation\x00"
	// envFixed is an envelope with an empty certificate and payload.
	envFixed = len(envMagic) + 1 + 1 + 32 + 8 + 32 + 8 + 2 + 4 + ed25519.SignatureSize
)

// Envelope kinds.
const (
	kindGenesis byte = 1
	kindMessage byte = 2
	kindOutcome byte = 3
	kindAck     byte = 4
)

var kindNames = map[byte]string{kindGenesis: "genesis", kindMessage: "message", kindOutcome: "outcome", kindAck: "ack"}

// envelope is a parsed, signature-checked envelope.
type envelope struct {
	kind    byte
	conv    ID // for a genesis: its own ID
	seq     uint64
	prev    MessageID
	lamport uint64
	cert    seed.DeviceCert
	payload []byte
	id      [32]byte
	raw     []byte
	plain   []byte // the payload opened, kept while the envelope is held
}

// refusef wraps ErrRefused with a reason.
func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRefused}, args...)...)
}

// seal signs an envelope of kind and returns its bytes and ID.
func sealEnvelope(key seed.DeviceKey, cert seed.DeviceCert, kind byte, conv ID, seq uint64, prev MessageID, lamport uint64, payload []byte) ([]byte, [32]byte) {
	certRaw := cert.Marshal()
	b := make([]byte, 0, envFixed+len(certRaw)+len(payload))
	b = append(b, envMagic...)
	b = append(b, envVersion, kind)
	b = append(b, conv[:]...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, prev[:]...)
	b = binary.BigEndian.AppendUint64(b, lamport)
	b = binary.BigEndian.AppendUint16(b, uint16(len(certRaw)))
	b = append(b, certRaw...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	id := envID(b)
	b = append(b, key.Sign(signedBytes(b))...)
	return b, id
}

func signedBytes(body []byte) []byte {
	return append([]byte(envContext), body...)
}

func envID(body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(envContext))
	h.Write(body)
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// parseEnvelope reads and checks an envelope: its form, its certificate
// and its signature. All errors wrap ErrRefused.
func parseEnvelope(b []byte) (*envelope, error) { return decodeEnvelope(b, true) }

// decodeEnvelope is parseEnvelope; verify false skips the envelope's
// signature, for envelopes read back from this device's own store.
func decodeEnvelope(b []byte, verify bool) (*envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, refusef("an envelope of %d bytes is more than %d", len(b), MaxEnvelopeSize)
	}
	if len(b) < envFixed {
		return nil, refusef("%d bytes are too few for an envelope", len(b))
	}
	if !bytes.HasPrefix(b, []byte(envMagic)) {
		return nil, refusef("not a conversation envelope")
	}
	d := reader{b: b[len(envMagic):]}
	if v := d.byte(); v != envVersion {
		return nil, refusef("envelope version %d, this kith reads %d", v, envVersion)
	}
	e := &envelope{kind: d.byte()}
	if _, ok := kindNames[e.kind]; !ok {
		return nil, refusef("unknown envelope kind %d", e.kind)
	}
	d.read(e.conv[:])
	e.seq = d.uint64()
	d.read(e.prev[:])
	e.lamport = d.uint64()
	certRaw := d.next(int(d.uint16()))
	e.payload = d.next(int(d.uint32()))
	bodyLen := len(b) - len(d.b)
	sig := d.next(ed25519.SignatureSize)
	if d.err != nil {
		return nil, refusef("the envelope ends early")
	}
	if len(d.b) != 0 {
		return nil, refusef("%d bytes follow the signature", len(d.b))
	}
	cert, err := seed.ParseDeviceCert(certRaw)
	if err != nil {
		return nil, refusef("the author's certificate: %w", err)
	}
	e.cert = cert
	if verify && !cert.Device.Verify(signedBytes(b[:bodyLen]), sig) {
		return nil, refusef("bad signature: device %s did not sign this envelope", cert.Device.Short())
	}
	var zero [32]byte
	switch e.kind {
	case kindGenesis:
		if e.conv != zero || e.seq != 0 || e.prev != zero || e.lamport != 0 {
			return nil, refusef("a genesis with a conversation, seq, prev or Lamport time")
		}
	case kindMessage, kindOutcome:
		switch {
		case e.conv == zero:
			return nil, refusef("a message without a conversation")
		case e.seq == 0, (e.seq == 1) != (e.prev == zero):
			return nil, refusef("broken chain: seq %d with prev %x", e.seq, e.prev[:4])
		case e.lamport == 0 || e.lamport > MaxLamport:
			return nil, refusef("Lamport time %d out of range", e.lamport)
		}
	case kindAck:
		if e.seq != 0 || e.prev != zero || e.lamport != 0 || e.conv == zero {
			return nil, refusef("an ack with a seq, prev or Lamport time, or without a conversation")
		}
	}
	e.id = envID(b[:bodyLen])
	if e.kind == kindGenesis {
		e.conv = e.id
	}
	e.raw = b
	return e, nil
}

// Inspect reads an envelope's clear header without keys (for forwarders),
// checking its form, its signature and its author's certificate. Errors
// wrap ErrRefused.
func Inspect(env []byte) (Header, error) {
	e, err := parseEnvelope(env)
	if err != nil {
		return Header{}, err
	}
	h := Header{
		Kind: kindNames[e.kind], Conv: e.conv, ID: e.id, From: e.cert.Device, User: e.cert.User,
		Seq: e.seq, Prev: e.prev, Lamport: e.lamport,
	}
	if e.kind == kindAck {
		to, ids, err := parseAck(e.payload)
		if err != nil {
			return Header{}, err
		}
		h.To, h.Acked = to, ids
	}
	return h, nil
}

// ackPayload encodes an ack's payload; ids are sorted and deduplicated.
func ackPayload(to seed.DevicePublic, ids []MessageID) []byte {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b MessageID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	b := append([]byte(nil), to[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ids)))
	for _, id := range ids {
		b = append(b, id[:]...)
	}
	return b
}

func parseAck(p []byte) (seed.DevicePublic, []MessageID, error) {
	d := reader{b: p}
	var to seed.DevicePublic
	d.read(to[:])
	n := int(d.uint16())
	if n == 0 || n > MaxAcked {
		return to, nil, refusef("an ack of %d envelopes (1 to %d)", n, MaxAcked)
	}
	ids := make([]MessageID, n)
	for i := range ids {
		d.read(ids[i][:])
		if i > 0 && d.err == nil && bytes.Compare(ids[i-1][:], ids[i][:]) >= 0 {
			return to, nil, refusef("an ack's IDs are not strictly ascending")
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return to, nil, refusef("a malformed ack")
	}
	return to, ids, nil
}

// reader reads big-endian fields; after a short read every field is zero
// and err is set.
type reader struct {
	b   []byte
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

var errShort = fmt.Errorf("too short")

func (r *reader) read(dst []byte) { copy(dst, r.next(len(dst))) }

func (r *reader) byte() byte {
	if b := r.next(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) uint16() uint16 {
	if b := r.next(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if b := r.next(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) uint64() uint64 {
	if b := r.next(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}
