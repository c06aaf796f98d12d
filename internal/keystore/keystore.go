// Package keystore keeps a device's secrets in its home folder, sealed at
// rest when the user has set a lock passphrase.
//
// The secrets are a small set of named byte strings ([Secrets]): the device's
// ed25519 seed, its X25519 archive key, the window secret and whatever public
// bytes belong with them. The keystore does not interpret them; the caller
// turns them into typed keys. The user key is never given to the keystore.
//
// # Sealing
//
// Without a lock passphrase the file holds the secrets in the clear, and only
// its mode (0600) protects them. With a lock passphrase (KITH_PASSPHRASE or a
// prompt), the secrets are encrypted with XChaCha20-Poly1305 under a key
// stretched from the passphrase by argon2id. The lock passphrase protects this
// device's file only: it never changes a derived key, and it is not the BIP39
// passphrase.
//
//	m     = argon2id(passphrase, salt, time, memory_kib, threads, 32 bytes)
//	key   = HKDF-Expand-SHA256(m, "kith/v1/keystore/aead", 32)
//	check = HKDF-Expand-SHA256(m, "kith/v1/keystore/check", 16)
//
// The salt (16 random bytes) and the argon2id parameters are stored in the
// header, so the parameters can grow later without breaking old files. Save
// uses time 3, 64 MiB and 4 threads. The check value lets Load tell a wrong
// passphrase ([ErrWrongPassphrase]) from a damaged file ([ErrCorrupt]); it
// gives an attacker nothing that a trial decryption would not.
//
// # File format, version 1
//
// The file "keys" in the home folder is UTF-8 text of exactly three lines,
// each ending in a single "\n" byte, and at most 1 MiB long:
//
//	line 1  the 16 bytes "kith-keystore v1"
//	line 2  the header: one JSON object on one line (fields below)
//	line 3  the body: standard base64, with padding
//
// Header fields, in the order Save writes them:
//
//	kdf         "argon2id", or "none" for an unsealed file
//	time        argon2id passes, 1 to 64             (sealed only)
//	memory_kib  argon2id memory in KiB, 8×threads to 1 GiB (sealed only)
//	threads     argon2id lanes, 1 to 255             (sealed only)
//	salt        base64 of 16 to 64 random bytes      (sealed only)
//	check       base64 of the 16-byte check value    (sealed only)
//	aead        "xchacha20poly1305", or "none" for an unsealed file
//	nonce       base64 of 24 random bytes            (sealed only)
//
// An unsealed header has only kdf and aead, both "none"; Save writes it as
// {"kdf":"none","aead":"none"}. Unknown fields are refused. An unsealed file
// has no integrity check beyond its structure: its mode is its protection. The body is the payload itself when unsealed, and
// XChaCha20-Poly1305(key, nonce, payload, additional data) when sealed, where
// the additional data is the exact bytes of lines 1 and 2, newlines included,
// so that no header byte can change without Load noticing.
//
// The payload is a JSON object {"entries":{NAME:VALUE,…}}, each VALUE the
// base64 of the entry's bytes. Names are 1 to 64 bytes of a-z, 0-9, ".", "_"
// and "-"; values are at most 4096 bytes; there are at most 256 entries.
//
// A first line "kith-keystore vN" with N other than 1 is refused with
// [ErrUnsupportedVersion]; anything else malformed, with [ErrCorrupt].
//
// # Writing
//
// Save writes a temporary file of mode 0600 in the home folder, syncs it,
// renames it over "keys" and syncs the folder, so a crash leaves either the old
// file or the new one, never a mix.
package keystore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kith-project/kith/internal/home"
)

// FileName is the name of the keys file inside a home folder.
const FileName = "keys"

// Sentinel errors that callers branch on. Errors returned by this package
// wrap them with the path and details.
var (
	ErrNotFound           = errors.New("no identity here")
	ErrLocked             = errors.New("the keys are locked")
	ErrWrongPassphrase    = errors.New("the lock passphrase is wrong")
	ErrCorrupt            = errors.New("the keys file is damaged or was modified")
	ErrUnsupportedVersion = errors.New("the keys file was written by a newer kith")
)

// Secrets are a device's named secrets and the public bytes kept with them,
// for example "device-ed25519" (a 32-byte seed), "archive-x25519" and
// "window". The caller may zero them with [Secrets.Zero] when done.
type Secrets struct {
	Entries map[string][]byte
}

// Zero overwrites every entry's bytes with zeros.
func (s Secrets) Zero() {
	for _, v := range s.Entries {
		clear(v)
	}
}

// params are argon2id's cost parameters.
type params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// defaultParams are the parameters Save uses.
var defaultParams = params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

// Save writes s to dir's keys file, replacing any file there atomically. When
// lock is empty the secrets are stored unsealed (the file is still mode 0600);
// otherwise they are sealed with a key stretched from lock. dir must exist.
func Save(dir string, s Secrets, lock []byte) error {
	return save(dir, s, lock, defaultParams, rand.Reader)
}

func save(dir string, s Secrets, lock []byte, p params, random io.Reader) error {
	data, err := encodeSecrets(s, lock, p, random)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	defer clear(data)
	if err := writeAtomic(filepath.Join(dir, FileName), data); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	return nil
}

// Load reads dir's keys file. A sealed file needs its lock passphrase: with an
// empty lock Load returns [ErrLocked], with a wrong one [ErrWrongPassphrase].
// An unsealed file ignores lock. A missing file is [ErrNotFound]. A file
// whose mode lets the group or others read it is tightened to 0600.
func Load(dir string, lock []byte) (Secrets, error) {
	path := filepath.Join(dir, FileName)
	f, err := readFile(path)
	if err != nil {
		return Secrets{}, err
	}
	s, err := f.open(lock)
	if err != nil {
		return Secrets{}, fmt.Errorf("keystore: opening %s: %w", path, err)
	}
	return s, nil
}

// IsSealed reports whether dir's keys file is sealed with a lock passphrase.
func IsSealed(dir string) (bool, error) {
	f, err := readFile(filepath.Join(dir, FileName))
	if err != nil {
		return false, err
	}
	defer clear(f.body)
	return f.sealed(), nil
}

// Exists reports whether dir has a keys file. It does not check the file.
func Exists(dir string) bool {
	info, err := os.Stat(filepath.Join(dir, FileName))
	return err == nil && info.Mode().IsRegular()
}

// ChangeLock re-seals dir's keys file under a new lock passphrase. old must
// open the current file (it is ignored when the file is unsealed); an empty
// new stores the secrets unsealed. The secrets themselves do not change.
func ChangeLock(dir string, old, new []byte) error {
	return changeLock(dir, old, new, defaultParams)
}

func changeLock(dir string, old, new []byte, p params) error {
	s, err := Load(dir, old)
	if err != nil {
		return err
	}
	defer s.Zero()
	return save(dir, s, new, p, rand.Reader)
}

// maxFileSize bounds what readFile accepts, far above any real keys file.
const maxFileSize = 1 << 20

// readFile reads and decodes the keys file at path, tightening its mode.
func readFile(path string) (*file, error) {
	fh, err := home.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("keystore: reading %s: %w", path, ErrNotFound)
	}
	if home.IsLinkErr(path, err) {
		return nil, fmt.Errorf("keystore: %s: %w", path, home.ErrLink)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: reading keys: %w", err)
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("keystore: reading keys: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("keystore: %s is not a regular file: %w", path, ErrCorrupt)
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := fh.Chmod(0o600); err != nil {
			return nil, fmt.Errorf("keystore: tightening %s to mode 0600: %w", path, err)
		}
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keystore: reading %s: %w", path, err)
	}
	defer clear(data)
	f, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("keystore: reading %s: %w", path, err)
	}
	return f, nil
}

// writeAtomic replaces path with data: a temporary file of mode 0600 in the
// same folder, synced, renamed over path, then the folder synced.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*.tmp")
	if err != nil {
		return fmt.Errorf("creating a temporary file next to %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("setting mode 0600 on %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		// Make the rename durable. Some systems cannot sync a folder; the
		// file itself is already synced, so that is not an error.
		_ = d.Sync()
		d.Close()
	}
	return nil
}
