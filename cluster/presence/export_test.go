package presence

import (
	"crypto/ed25519"
	"net/netip"
	"slices"
	"time"

	"github.com/kith-project/kith/seed"
)

// This file opens presence's insides to its external tests (package
// presence_test), which use presencetest and so cannot live inside the
// package.

var (
	EncodeBeat = encodeBeat
	SignRecord = signRecord
)

const KeySize = keySize

// RecordOf decodes a signed address record.
func RecordOf(b []byte) (device seed.DevicePublic, addr netip.AddrPort, version uint64, err error) {
	r, err := decodeRecord(b)
	return r.device, r.addr, r.version, err
}

// NextSeq returns a fresh sequence number of p's.
func (p *Presence) NextSeq() uint64 { return p.nextSeq() }

// OwnRecordBytes returns p's own signed record, nil if none yet.
func (p *Presence) OwnRecordBytes() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.self.record)
}

// SetPeerOwn marks the record p holds for device as an own device's or a
// friend's, and reports whether p holds one.
func (p *Presence) SetPeerOwn(device seed.DevicePublic, own bool) (haveRecord bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.peer(device)
	ps.own = own
	return ps.record != nil
}

// Gossip returns the records p would send to.
func (p *Presence) Gossip(to PeerInfo) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gossipLocked(to)
}

// ForgetLastSeen makes device seem gone to p.
func (p *Presence) ForgetLastSeen(device seed.DevicePublic) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peer(device).lastSeen = time.Time{}
}

// PollLocals takes a LocalAddrs poll at now, as Step does.
func (p *Presence) PollLocals(now time.Time) {
	locals := p.cfg.LocalAddrs()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.noteLocals(locals, now)
}

// BenchMessage is a message the size of a heartbeat's signed bytes with
// one record.
func BenchMessage() []byte { return make([]byte, len(ctxHeartbeat)+keySize+beatFixed+recordSize) }

// Pub returns p's own device key.
func (p *Presence) Pub() seed.DevicePublic { return p.pub }

// EncodeReplyTo builds a reply to the heartbeat hbSeq sent at hbT1.
func EncodeReplyTo(key ed25519.PrivateKey, to seed.DevicePublic, seq, hbSeq uint64, hbT1, t2, t3 int64, seen netip.AddrPort, records [][]byte) []byte {
	return encodeReply(key, to, seq, packet{seq: hbSeq, t1: hbT1}, t2, t3, seen, records)
}

// The signature budgets, for the flood tests.
const (
	OtherBurst = otherBurst
	OtherRate  = otherRate
)
