package roster

import (
	"fmt"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// merge takes the signed roster raw (OpMerge) into r, which is a fresh
// clone, as a union:
//
//   - Every revocation is kept for good. One of this user's own is always
//     taken; a friend's only for a device that is that friend's, by a
//     certificate in the document or in r, so that no friend can revoke
//     someone else's device.
//   - A certificate adds its device (kind own for this user, friend for a
//     friend), or renames a known one when it is newer; never a device
//     revoked by its user, never the local device, and never a device r
//     knows as another user's, unless the certificate is this user's own:
//     a friend can certify any public key, but only this user's key
//     proves a device this user's.
//   - r holds at most MaxSignedCerts devices and MaxSignedRevocations
//     revocations of one user; past that, new ones are not taken.
//
// Nothing is ever removed, so an old document changes nothing. The
// document must be this user's or a friend's (ErrNoFriend otherwise).
func (r *Roster) merge(tx *store.Tx, raw []byte) error {
	s, err := ParseSigned(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadChange, err)
	}
	kind := KindFriend
	if s.User.Equal(r.self) {
		kind = KindOwn
	} else if _, ok := r.friends[s.User]; !ok {
		return fmt.Errorf("%w: the roster is user %s's", ErrNoFriend, s.User.Short())
	}
	// A user signs certificates and revocations at will: what one user's
	// rosters can add is bounded as one document is, whatever arrives.
	ndev, nrev := len(r.DevicesOf(s.User)), 0
	for _, rev := range r.revoked {
		if rev.User.Equal(s.User) {
			nrev++
		}
	}
	for _, rev := range s.Revocations {
		if nrev >= MaxSignedRevocations {
			break
		}
		if r.revokedAs(rev.Device, s.User) {
			continue // known: the earliest one stays
		}
		if kind == KindFriend {
			_, inDoc := s.Cert(rev.Device)
			dv, known := r.devices[rev.Device]
			if !inDoc && !(known && dv.UserID.Equal(s.User)) {
				continue
			}
		}
		if err := r.putRevocation(tx, rev); err != nil {
			return err
		}
		nrev++
	}
	for _, c := range s.Certs {
		if c.Device.Equal(r.local) || r.revokedAs(c.Device, s.User) {
			continue
		}
		old, known := r.devices[c.Device]
		switch {
		case known && old.UserID.Equal(s.User):
			if !newerCert(c, old.Cert) {
				continue
			}
			old.Name, old.Cert = c.Name, c.Marshal()
			if err := r.putDevice(tx, old); err != nil {
				return err
			}
			continue
		case known && kind != KindOwn:
			continue // another user's: no friend takes it
		case !known && ndev >= MaxSignedCerts:
			continue
		}
		// New, or ours by our own key's certificate whatever a friend
		// claimed of it.
		d := Device{DeviceID: c.Device, UserID: s.User, Kind: kind, Name: c.Name, Cert: c.Marshal()}
		if err := r.putDevice(tx, d); err != nil {
			return err
		}
		ndev++
	}
	return nil
}

// newerCert reports whether c was issued after the stored certificate old
// (or old is missing or unreadable).
func newerCert(c seed.DeviceCert, old []byte) bool {
	oc, err := seed.ParseDeviceCert(old)
	return err != nil || c.Issued.After(oc.Issued)
}

func (r *Roster) putRevocation(tx *store.Tx, rev seed.Revocation) error {
	if err := tx.Put(store.BucketRevocations, rev.Device.ID(), rev.Marshal()); err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	r.revoked[rev.Device] = rev
	return nil
}

func (r *Roster) deleteRevocation(tx *store.Tx, d seed.DevicePublic) error {
	if err := tx.Delete(store.BucketRevocations, d.ID()); err != nil {
		return fmt.Errorf("roster: %w", err)
	}
	delete(r.revoked, d)
	return nil
}
