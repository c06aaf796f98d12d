package pairing

import "crypto/subtle"

// These methods let an agent that shows several invites at once route a
// scan or a Hello to the right Machine.

// Ours returns the invite this Machine pairs for.
func (m *Machine) Ours() Invite { return m.ours }

// HasScanned reports whether this device's user scanned a code for this
// Machine.
func (m *Machine) HasScanned() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.scanned
}

// Awaits reports whether peer's device already sent a verified Hello for
// this Machine's invite, so that scanning peer here completes the pairing.
func (m *Machine) Awaits(peer Invite) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	pb := peer.Bytes()
	for _, p := range m.pending {
		if subtle.ConstantTimeCompare(p.bytes, pb) == 1 {
			return true
		}
	}
	return false
}

// Proves reports whether h carries a proof of this Machine's invite secret,
// that is, whether h is meant for this Machine. It checks nothing else;
// HandleHello does.
func (m *Machine) Proves(h Hello) bool {
	if m.err != nil {
		return false
	}
	theirs, err := decodeInvite(h.Invite)
	if err != nil {
		return false
	}
	return checkProof(m.ours.Secret, transcriptOf(m.ours, theirs), theirs.Device, h.Proof)
}
