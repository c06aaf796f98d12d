package store

import (
	"time"

	"github.com/kith-project/kith/seed"
)

// identityKey is the key of this device's Identity in the identity bucket.
const identityKey = "self"

// Identity is who this device is: its user, its own keys' public halves and
// its certificate. It holds no secret; those live in the keystore.
type Identity struct {
	UserID           seed.UserPublic   `json:"user_id"`           // the user public key, as lowercase hex
	DeviceID         seed.DevicePublic `json:"device_id"`         // the device public key, as lowercase hex
	DeviceIndex      uint32            `json:"device_index"`      // i in the derivation path m/P'/1'/i'
	Name             string            `json:"name"`              // the device's name, as the user chose it
	ArchiveRecipient string            `json:"archive_recipient"` // the device's age recipient, "age1…"
	// RecoveryRecipient is the user's recovery archive recipient (public),
	// which archives are sealed to outside while the user has one device;
	// empty in homes made before archives.
	RecoveryRecipient string    `json:"recovery_recipient,omitempty"`
	Cert              []byte    `json:"cert"`    // the device certificate, signed by the user key
	Created           time.Time `json:"created"` // when init or restore made this identity
}

// Identity returns this device's identity, and false if none is stored yet.
func (s *Store) Identity() (Identity, bool, error) {
	var id Identity
	found, err := s.Get(BucketIdentity, identityKey, &id)
	return id, found, err
}

// SetIdentity stores this device's identity, replacing any stored before.
func (s *Store) SetIdentity(id Identity) error {
	return s.Put(BucketIdentity, identityKey, id)
}
