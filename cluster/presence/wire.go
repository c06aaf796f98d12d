package presence

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/kith-project/kith/seed"
)

// Datagram types: the first byte of a kith presence datagram. They lie in
// the range the transport hands to the agent (0x04..0x3f).
const (
	TypeHeartbeat      byte = 0x10
	TypeHeartbeatReply byte = 0x11
	TypeAddrUpdate     byte = 0x12
)

// WireVersion is the second byte of every presence datagram.
const WireVersion byte = 1

// Signature contexts: the versioned labels that open every signed message,
// so that no signature of one kind can be passed off as another.
const (
	ctxHeartbeat  = "kith/v1/heartbeat\x00"
	ctxReply      = "kith/v1/heartbeat-reply\x00"
	ctxAddrUpdate = "kith/v1/addr-update\x00"
	ctxRecord     = "kith/v1/addr\x00"
)

// Sizes of the wire format, in bytes.
const (
	keySize     = ed25519.PublicKeySize // 32
	sigSize     = ed25519.SignatureSize // 64
	addrSize    = 16 + 2                // IPv6 (IPv4-mapped for IPv4) and port
	recordSize  = keySize + addrSize + 8 + sigSize
	maxRecords  = 3
	headerSize  = 1 + 1 + keySize + 8 // type, version, sender, seq
	beatFixed   = headerSize + 8 + 1  // + t1, record count
	replyFixed  = headerSize + 8 + 8 + 8 + 8 + addrSize + 1
	maxBeatSize = beatFixed + maxRecords*recordSize + sigSize
)

// Errors of the decoders. Callers branch on them with errors.Is.
var (
	// ErrMalformed: the bytes are not a well-formed presence datagram or
	// address record (wrong length, bad field).
	ErrMalformed = errors.New("presence: malformed presence datagram")
	// ErrWireVersion: the datagram has a wire version this build does not
	// speak; the sender runs a newer kith.
	ErrWireVersion = errors.New("presence: unknown presence wire version (is the peer running a newer kith?)")
	// ErrBadSignature: a signature does not verify under the key it claims.
	ErrBadSignature = errors.New("presence: bad signature")
)

// putAddr writes a into b[:addrSize].
func putAddr(b []byte, a netip.AddrPort) {
	ip := a.Addr().Unmap()
	if ip.Is4() {
		ip = netip.AddrFrom16(ip.As16()) // IPv4-mapped
	}
	s := ip.As16()
	copy(b, s[:])
	binary.BigEndian.PutUint16(b[16:], a.Port())
}

// getAddr reads an address written by putAddr. It refuses the unspecified
// address and port zero, which name no peer.
func getAddr(b []byte) (netip.AddrPort, error) {
	ip := netip.AddrFrom16([16]byte(b[:16])).Unmap()
	port := binary.BigEndian.Uint16(b[16:])
	if ip.IsUnspecified() || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: address %s port %d names no host", ErrMalformed, ip, port)
	}
	return netip.AddrPortFrom(ip, port), nil
}

// validAddr reports whether a can travel in a record or a reply: a
// specified IP without a zone (zones do not survive the trip) and a port.
func validAddr(a netip.AddrPort) bool {
	ip := a.Addr()
	return ip.IsValid() && !ip.IsUnspecified() && ip.Zone() == "" && a.Port() != 0
}

// normAddr returns a with an IPv4-mapped IPv6 address turned into IPv4, so
// that one host has one spelling.
func normAddr(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// record is a decoded address record. raw holds the record's signed bytes
// as received, so that gossip forwards exactly what the device signed.
type record struct {
	device  seed.DevicePublic
	addr    netip.AddrPort
	version uint64
	raw     []byte
}

// recordMessage is what a record's signature covers.
func recordMessage(body []byte) []byte {
	m := make([]byte, 0, len(ctxRecord)+len(body))
	return append(append(m, ctxRecord...), body...)
}

// signRecord makes the signed record that says key's device is at addr.
func signRecord(key ed25519.PrivateKey, addr netip.AddrPort, version uint64) []byte {
	b := make([]byte, recordSize)
	copy(b, key.Public().(ed25519.PublicKey))
	putAddr(b[keySize:], addr)
	binary.BigEndian.PutUint64(b[keySize+addrSize:], version)
	body := b[:recordSize-sigSize]
	copy(b[recordSize-sigSize:], ed25519.Sign(key, recordMessage(body)))
	return b
}

// decodeRecord parses a record without checking its signature; see
// verifyRecord. The result does not alias b.
func decodeRecord(b []byte) (record, error) {
	if len(b) != recordSize {
		return record{}, fmt.Errorf("%w: record is %d bytes, want %d", ErrMalformed, len(b), recordSize)
	}
	addr, err := getAddr(b[keySize:])
	if err != nil {
		return record{}, err
	}
	raw := append([]byte(nil), b...)
	return record{
		device:  seed.DevicePublic(raw[:keySize]),
		addr:    addr,
		version: binary.BigEndian.Uint64(b[keySize+addrSize:]),
		raw:     raw,
	}, nil
}

// verifyRecord checks r's signature under the key it names.
func verifyRecord(r record) bool {
	body := r.raw[:recordSize-sigSize]
	return r.device.Verify(recordMessage(body), r.raw[recordSize-sigSize:])
}

// packet is a decoded heartbeat, address update or reply. Fields that a
// type does not carry are zero.
type packet struct {
	typ     byte
	sender  seed.DevicePublic // converted once from the wire
	seq     uint64
	t1      int64 // heartbeat: send time; reply: the echoed heartbeat's
	echoSeq uint64
	t2, t3  int64
	seen    netip.AddrPort // reply: the heartbeat's observed source
	records []record
	signed  []byte // the bytes the signature covers (after the context)
	sig     []byte
}

// sigContext returns the signature context for a datagram type.
func sigContext(typ byte) string {
	switch typ {
	case TypeHeartbeat:
		return ctxHeartbeat
	case TypeAddrUpdate:
		return ctxAddrUpdate
	default:
		return ctxReply
	}
}

// signedMessage is what a datagram's signature covers: the context, the
// recipient's device key (not sent: it binds the datagram to one
// recipient) and every byte before the signature.
func signedMessage(typ byte, to seed.DevicePublic, body []byte) []byte {
	c := sigContext(typ)
	m := make([]byte, 0, len(c)+keySize+len(body))
	m = append(m, c...)
	m = append(m, to[:]...)
	return append(m, body...)
}

// encodeBeat builds a signed heartbeat or address update for the device
// to. records are signed records, at most maxRecords.
func encodeBeat(typ byte, key ed25519.PrivateKey, to seed.DevicePublic, seq uint64, t1 int64, records [][]byte) []byte {
	b := make([]byte, beatFixed, beatFixed+len(records)*recordSize+sigSize)
	b[0], b[1] = typ, WireVersion
	copy(b[2:], key.Public().(ed25519.PublicKey))
	binary.BigEndian.PutUint64(b[headerSize-8:], seq)
	binary.BigEndian.PutUint64(b[headerSize:], uint64(t1))
	b[beatFixed-1] = byte(len(records))
	for _, r := range records {
		b = append(b, r...)
	}
	return append(b, ed25519.Sign(key, signedMessage(typ, to, b))...)
}

// encodeReply builds a signed reply to the heartbeat hb from device to,
// which was seen from the address seen.
func encodeReply(key ed25519.PrivateKey, to seed.DevicePublic, seq uint64, hb packet, t2, t3 int64, seen netip.AddrPort, records [][]byte) []byte {
	b := make([]byte, replyFixed, replyFixed+len(records)*recordSize+sigSize)
	b[0], b[1] = TypeHeartbeatReply, WireVersion
	copy(b[2:], key.Public().(ed25519.PublicKey))
	o := headerSize - 8
	binary.BigEndian.PutUint64(b[o:], seq)
	binary.BigEndian.PutUint64(b[o+8:], hb.seq)
	binary.BigEndian.PutUint64(b[o+16:], uint64(hb.t1))
	binary.BigEndian.PutUint64(b[o+24:], uint64(t2))
	binary.BigEndian.PutUint64(b[o+32:], uint64(t3))
	putAddr(b[o+40:], seen)
	b[replyFixed-1] = byte(len(records))
	for _, r := range records {
		b = append(b, r...)
	}
	return append(b, ed25519.Sign(key, signedMessage(TypeHeartbeatReply, to, b))...)
}

// decodePacket parses a presence datagram without checking its signature
// (see verifyPacket), so that a sender can be looked up first. The result
// does not alias b.
func decodePacket(b []byte) (packet, error) {
	if len(b) < 2 {
		return packet{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	var p packet
	p.typ = b[0]
	var fixed int
	switch p.typ {
	case TypeHeartbeat, TypeAddrUpdate:
		fixed = beatFixed
	case TypeHeartbeatReply:
		fixed = replyFixed
	default:
		return packet{}, fmt.Errorf("%w: type 0x%02x", ErrMalformed, p.typ)
	}
	if b[1] != WireVersion {
		return packet{}, fmt.Errorf("%w: got %d, speak %d", ErrWireVersion, b[1], WireVersion)
	}
	if len(b) < fixed+sigSize {
		return packet{}, fmt.Errorf("%w: %d bytes is too short", ErrMalformed, len(b))
	}
	n := int(b[fixed-1])
	if n > maxRecords {
		return packet{}, fmt.Errorf("%w: %d records, at most %d", ErrMalformed, n, maxRecords)
	}
	if want := fixed + n*recordSize + sigSize; len(b) != want {
		return packet{}, fmt.Errorf("%w: %d bytes, want %d for %d records", ErrMalformed, len(b), want, n)
	}
	b = append([]byte(nil), b...) // own the bytes: the caller reuses its buffer
	p.sender = seed.DevicePublic(b[2 : 2+keySize])
	o := headerSize - 8
	p.seq = binary.BigEndian.Uint64(b[o:])
	if p.typ == TypeHeartbeatReply {
		p.echoSeq = binary.BigEndian.Uint64(b[o+8:])
		p.t1 = int64(binary.BigEndian.Uint64(b[o+16:]))
		p.t2 = int64(binary.BigEndian.Uint64(b[o+24:]))
		p.t3 = int64(binary.BigEndian.Uint64(b[o+32:]))
		seen, err := getAddr(b[o+40:])
		if err != nil {
			return packet{}, fmt.Errorf("observed address: %w", err)
		}
		p.seen = seen
	} else {
		p.t1 = int64(binary.BigEndian.Uint64(b[o+8:]))
	}
	for i := range n {
		r, err := decodeRecord(b[fixed+i*recordSize : fixed+(i+1)*recordSize])
		if err != nil {
			return packet{}, fmt.Errorf("record %d: %w", i, err)
		}
		p.records = append(p.records, r)
	}
	p.signed = b[:len(b)-sigSize]
	p.sig = b[len(b)-sigSize:]
	return p, nil
}

// verifyPacket checks p's signature under its sender key, as addressed to
// the device me.
func verifyPacket(p packet, me seed.DevicePublic) bool {
	return p.sender.Verify(signedMessage(p.typ, me, p.signed), p.sig)
}
