// Package device is one kith device's identity on disk: the keys derived
// from the seed phrase for one device index, its certificate signed by the
// user key, and the public record of who it is.
//
// # Provisioning
//
// [Provision] is what "kith init" and "kith restore" do: from a parsed seed
// phrase and the BIP39 passphrase it derives the user key, the device's
// signing and archive keys and the presence window secret (DESIGN §2),
// issues the device certificate with the user key, and writes
//
//   - the device's private keys to the keystore (home/keys, mode 0600, sealed
//     with the lock passphrase when one is given), and
//   - the public identity (user ID, device ID, index, name, certificate) to
//     the bbolt store (home/kith.db).
//
// The user key itself is dropped when Provision returns: it is never
// written anywhere. The lock passphrase only seals the keystore and never
// enters a derivation, so changing it changes no ID.
//
// # Loading
//
// [Load] opens the keystore with the lock passphrase and returns the
// device's keys with its certificate, for the agent.
package device

import (
	"errors"
	"fmt"
	"time"

	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/seed"
)

// Names of the keystore entries.
const (
	entryDevice  = "device-ed25519"
	entryArchive = "archive-x25519"
	entryWindow  = "window"
)

// ErrExists is returned by Provision when the home already holds an
// identity and force is not set.
var ErrExists = errors.New("this home already holds an identity")

// Request is what Provision needs.
type Request struct {
	Phrase     seed.Phrase
	Passphrase string // BIP39 passphrase, "" for none
	Index      uint32
	Name       string
	Lock       []byte // lock passphrase for the keystore, nil for none
	Force      bool   // replace an existing identity
	Now        time.Time
}

// Keys are a device's private keys, loaded from the keystore.
type Keys struct {
	Device  seed.DeviceKey
	Archive seed.ArchiveKey
	Window  seed.WindowSecret
}

// Device is a loaded device: its keys, certificate and public identity.
type Device struct {
	Keys
	Cert     seed.DeviceCert
	Identity store.Identity
}

// Provision derives the device's keys and writes its identity into the home
// folder dir, whose store st is open. It returns the identity written.
func Provision(dir string, st *store.Store, req Request) (store.Identity, error) {
	if req.Index > seed.MaxDeviceIndex {
		return store.Identity{}, fmt.Errorf("device index %d is out of range (0 to %d)", req.Index, seed.MaxDeviceIndex)
	}
	if !req.Force {
		if _, ok, err := st.Identity(); err != nil {
			return store.Identity{}, err
		} else if ok || keystore.Exists(dir) {
			return store.Identity{}, ErrExists
		}
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	s := req.Phrase.Seed(req.Passphrase)
	defer clear(s)
	user, err := seed.DeriveUser(s)
	if err != nil {
		return store.Identity{}, fmt.Errorf("deriving the user key: %w", err)
	}
	dev, arch, err := seed.DeriveDevice(s, req.Index)
	if err != nil {
		return store.Identity{}, fmt.Errorf("deriving device %d's keys: %w", req.Index, err)
	}
	win, err := seed.DeriveWindowSecret(s)
	if err != nil {
		return store.Identity{}, fmt.Errorf("deriving the presence window secret: %w", err)
	}
	recovery, err := seed.DeriveRecoveryArchive(s)
	if err != nil {
		return store.Identity{}, fmt.Errorf("deriving the recovery archive key: %w", err)
	}
	cert, err := user.IssueDeviceCert(seed.DeviceCert{
		User:    user.Public(),
		Device:  dev.Public(),
		Index:   req.Index,
		Archive: arch.Recipient(),
		Name:    req.Name,
		Roles:   []string{"access"},
		Issued:  req.Now,
	})
	if err != nil {
		return store.Identity{}, fmt.Errorf("issuing the device certificate: %w", err)
	}
	secrets := keystore.Secrets{Entries: map[string][]byte{
		entryDevice:  dev.Bytes(),
		entryArchive: arch.Bytes(),
		entryWindow:  win[:],
	}}
	if err := keystore.Save(dir, secrets, req.Lock); err != nil {
		return store.Identity{}, fmt.Errorf("saving the device keys: %w", err)
	}
	for _, b := range secrets.Entries {
		clear(b)
	}
	id := store.Identity{
		UserID:           user.Public(),
		DeviceID:         dev.Public(),
		DeviceIndex:      req.Index,
		Name:             req.Name,
		ArchiveRecipient: arch.Recipient().String(),
		// Public: archives of a device alone are sealed outside to it.
		RecoveryRecipient: recovery.Recipient().String(),
		Cert:              cert.Marshal(),
		Created:           req.Now.UTC().Truncate(time.Second),
	}
	if err := st.SetIdentity(id); err != nil {
		return store.Identity{}, fmt.Errorf("saving the identity: %w", err)
	}
	return id, nil
}

// KeysError is the error of [Load] when the keystore cannot serve this
// home's identity: an entry is missing or damaged, or the keys are another
// device's. Restoring the device from its seed phrase mends it.
type KeysError struct {
	Problem string
}

func (e *KeysError) Error() string { return e.Problem }

// Load opens the device's keys in dir with the lock passphrase (nil for
// none) and checks them against the identity in st.
func Load(dir string, st *store.Store, lock []byte) (*Device, error) {
	id, ok, err := st.Identity()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, keystore.ErrNotFound
	}
	sec, err := keystore.Load(dir, lock)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, b := range sec.Entries {
			clear(b)
		}
	}()
	var d Device
	d.Identity = id
	if d.Device, err = seed.DeviceKeyFromBytes(sec.Entries[entryDevice]); err != nil {
		return nil, fmt.Errorf("keystore entry %q: %w", entryDevice, err)
	}
	if d.Archive, err = seed.ArchiveKeyFromBytes(sec.Entries[entryArchive]); err != nil {
		return nil, fmt.Errorf("keystore entry %q: %w", entryArchive, err)
	}
	if len(sec.Entries[entryWindow]) != len(d.Window) {
		return nil, &KeysError{Problem: fmt.Sprintf("keystore entry %q is missing or damaged", entryWindow)}
	}
	copy(d.Window[:], sec.Entries[entryWindow])
	if d.Cert, err = seed.ParseDeviceCert(id.Cert); err != nil {
		return nil, fmt.Errorf("this device's certificate: %w", err)
	}
	if !d.Cert.Device.Equal(d.Device.Public()) {
		return nil, &KeysError{Problem: "the keystore does not belong to this home's identity"}
	}
	return &d, nil
}
