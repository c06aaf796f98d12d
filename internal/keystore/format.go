package keystore

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// The fixed strings of format version 1.
const (
	magic       = "kith-keystore v"
	versionV1   = 1
	kdfNone     = "none"
	kdfArgon2   = "argon2id"
	aeadNone    = "none"
	aeadXChaCha = "xchacha20poly1305"

	infoAEAD  = "kith/v1/keystore/aead"
	infoCheck = "kith/v1/keystore/check"
)

// Sizes and bounds of format version 1.
const (
	saltSize   = 16
	minSalt    = 16
	maxSalt    = 64
	checkSize  = 16
	keySize    = chacha20poly1305.KeySize
	maxTime    = 64
	maxMemory  = 1 << 20 // KiB, that is 1 GiB
	maxEntries = 256
	maxName    = 64
	maxValue   = 4096
)

// header is line 2 of the file. The field order is the order Save writes.
type header struct {
	KDF       string `json:"kdf"`
	Time      uint32 `json:"time,omitempty"`
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
	Salt      []byte `json:"salt,omitempty"`
	Check     []byte `json:"check,omitempty"`
	AEAD      string `json:"aead"`
	Nonce     []byte `json:"nonce,omitempty"`
}

// payload is what the body holds, sealed or not.
type payload struct {
	Entries map[string][]byte `json:"entries"`
}

// file is a decoded keys file.
type file struct {
	hdr  header
	aad  []byte // the exact bytes of lines 1 and 2
	body []byte // the payload, or its ciphertext when sealed
}

func (f *file) sealed() bool { return f.hdr.KDF != kdfNone }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
}

// decode parses a keys file without opening it. It never panics and does not
// keep references to data.
func decode(data []byte) (*file, error) {
	if len(data) == 0 {
		return nil, corrupt("the file is empty")
	}
	if len(data) > maxFileSize {
		return nil, corrupt("the file is larger than %d bytes", maxFileSize)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := checkVersion(lines[0]); err != nil {
		return nil, err
	}
	// A well-formed file splits into three lines and an empty remainder.
	if len(lines) < 4 || len(lines[3]) != 0 {
		return nil, corrupt("the file does not have exactly three lines (it may be truncated)")
	}
	if string(lines[0]) != magic+strconv.Itoa(versionV1)+"\n" {
		return nil, corrupt("line 1 is not %q", magic+strconv.Itoa(versionV1))
	}
	hdrLine := bytes.TrimSuffix(lines[1], []byte("\n"))
	bodyLine := bytes.TrimSuffix(lines[2], []byte("\n"))

	var h header
	dec := json.NewDecoder(bytes.NewReader(hdrLine))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, corrupt("line 2 is not a valid header: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, corrupt("line 2 has data after the header")
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	// Strict decoding and no CR: every change to the body changes its bytes.
	if bytes.IndexByte(bodyLine, '\r') >= 0 {
		return nil, corrupt("line 3 is not valid base64: it holds a carriage return")
	}
	body := make([]byte, base64.StdEncoding.DecodedLen(len(bodyLine)))
	n, err := base64.StdEncoding.Strict().Decode(body, bodyLine)
	if err != nil {
		clear(body)
		return nil, corrupt("line 3 is not valid base64: %v", err)
	}
	body = body[:n]
	if h.KDF != kdfNone && len(body) < chacha20poly1305.Overhead {
		clear(body)
		return nil, corrupt("the sealed body is %d bytes, shorter than its authentication tag", len(body))
	}
	aad := make([]byte, len(lines[0])+len(lines[1]))
	copy(aad, lines[0])
	copy(aad[len(lines[0]):], lines[1])
	return &file{hdr: h, aad: aad, body: body}, nil
}

// checkVersion refuses a first line that names a format version other than
// 1, so that a file from a newer kith is not reported as damaged.
func checkVersion(line []byte) error {
	rest, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte(magic))
	if !ok {
		return nil
	}
	if v, err := strconv.ParseUint(string(rest), 10, 32); err == nil && v != versionV1 {
		return fmt.Errorf("the file is in format version %d and this kith reads version %d: %w", v, versionV1, ErrUnsupportedVersion)
	}
	return nil
}

func (h *header) validate() error {
	switch h.KDF {
	case kdfNone:
		if h.AEAD != aeadNone || h.Time != 0 || h.MemoryKiB != 0 || h.Threads != 0 ||
			h.Salt != nil || h.Check != nil || h.Nonce != nil {
			return corrupt(`an unsealed header must be exactly {"kdf":"none","aead":"none"}`)
		}
		return nil
	case kdfArgon2:
	default:
		return corrupt("unknown key derivation %q", h.KDF)
	}
	switch {
	case h.AEAD != aeadXChaCha:
		return corrupt("unknown cipher %q", h.AEAD)
	case h.Time < 1 || h.Time > maxTime:
		return corrupt("argon2id time %d is outside 1 to %d", h.Time, maxTime)
	case h.Threads < 1:
		return corrupt("argon2id threads must be at least 1")
	case h.MemoryKiB < 8*uint32(h.Threads) || h.MemoryKiB > maxMemory:
		return corrupt("argon2id memory %d KiB is outside %d to %d", h.MemoryKiB, 8*uint32(h.Threads), maxMemory)
	case len(h.Salt) < minSalt || len(h.Salt) > maxSalt:
		return corrupt("the salt is %d bytes, not %d to %d", len(h.Salt), minSalt, maxSalt)
	case len(h.Check) != checkSize:
		return corrupt("the check value is %d bytes, not %d", len(h.Check), checkSize)
	case len(h.Nonce) != chacha20poly1305.NonceSizeX:
		return corrupt("the nonce is %d bytes, not %d", len(h.Nonce), chacha20poly1305.NonceSizeX)
	}
	return nil
}

// encode writes f in the file format. f.aad must hold lines 1 and 2.
func (f *file) encode() []byte {
	out := make([]byte, 0, len(f.aad)+base64.StdEncoding.EncodedLen(len(f.body))+1)
	out = append(out, f.aad...)
	out = base64.StdEncoding.AppendEncode(out, f.body)
	return append(out, '\n')
}

// headerLines returns lines 1 and 2 for h.
func headerLines(h header) ([]byte, error) {
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encoding the header: %w", err)
	}
	out := []byte(magic + strconv.Itoa(versionV1) + "\n")
	out = append(out, js...)
	return append(out, '\n'), nil
}

// deriveKeys stretches lock into the AEAD key and the check value.
func deriveKeys(lock []byte, h *header) (key, check []byte, err error) {
	m := argon2.IDKey(lock, h.Salt, h.Time, h.MemoryKiB, h.Threads, keySize)
	defer clear(m)
	key, err = hkdf.Expand(sha256.New, m, infoAEAD, keySize)
	if err != nil {
		return nil, nil, err
	}
	check, err = hkdf.Expand(sha256.New, m, infoCheck, checkSize)
	if err != nil {
		clear(key)
		return nil, nil, err
	}
	return key, check, nil
}

// open returns the secrets in f, unsealing them with lock if needed.
func (f *file) open(lock []byte) (Secrets, error) {
	if !f.sealed() {
		return decodePayload(f.body)
	}
	if len(lock) == 0 {
		return Secrets{}, ErrLocked
	}
	key, check, err := deriveKeys(lock, &f.hdr)
	if err != nil {
		return Secrets{}, fmt.Errorf("deriving the key: %w", err)
	}
	defer clear(key)
	if subtle.ConstantTimeCompare(check, f.hdr.Check) != 1 {
		return Secrets{}, ErrWrongPassphrase
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return Secrets{}, fmt.Errorf("creating the cipher: %w", err)
	}
	plain, err := aead.Open(nil, f.hdr.Nonce, f.body, f.aad)
	if err != nil {
		return Secrets{}, corrupt("the passphrase is right but the sealed data does not authenticate")
	}
	defer clear(plain)
	return decodePayload(plain)
}

// encodeSecrets returns the whole keys file for s, sealed when lock is not
// empty.
func encodeSecrets(s Secrets, lock []byte, p params, random io.Reader) ([]byte, error) {
	if err := validateEntries(s.Entries); err != nil {
		return nil, err
	}
	plain, err := encodePayload(s)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	if len(lock) == 0 {
		aad, err := headerLines(header{KDF: kdfNone, AEAD: aeadNone})
		if err != nil {
			return nil, err
		}
		return (&file{aad: aad, body: plain}).encode(), nil
	}
	h := header{
		KDF:       kdfArgon2,
		Time:      p.Time,
		MemoryKiB: p.MemoryKiB,
		Threads:   p.Threads,
		Salt:      make([]byte, saltSize),
		Check:     make([]byte, checkSize), // set below, once derived
		AEAD:      aeadXChaCha,
		Nonce:     make([]byte, chacha20poly1305.NonceSizeX),
	}
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("bad sealing parameters: %w", err)
	}
	if _, err := io.ReadFull(random, h.Salt); err != nil {
		return nil, fmt.Errorf("drawing a salt: %w", err)
	}
	if _, err := io.ReadFull(random, h.Nonce); err != nil {
		return nil, fmt.Errorf("drawing a nonce: %w", err)
	}
	key, check, err := deriveKeys(lock, &h)
	if err != nil {
		return nil, fmt.Errorf("deriving the key: %w", err)
	}
	defer clear(key)
	h.Check = check
	aad, err := headerLines(h)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("creating the cipher: %w", err)
	}
	sealed := aead.Seal(nil, h.Nonce, plain, aad)
	return (&file{aad: aad, body: sealed}).encode(), nil
}

func encodePayload(s Secrets) ([]byte, error) {
	entries := s.Entries
	if entries == nil {
		entries = map[string][]byte{}
	}
	js, err := json.Marshal(payload{Entries: entries})
	if err != nil {
		return nil, fmt.Errorf("encoding the secrets: %w", err)
	}
	return js, nil
}

func decodePayload(data []byte) (Secrets, error) {
	var p payload
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Secrets{}, corrupt("the secrets are not valid: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Secrets{}, corrupt("the secrets have data after them")
	}
	if p.Entries == nil {
		return Secrets{}, corrupt("the secrets have no entries object")
	}
	if err := validateEntries(p.Entries); err != nil {
		Secrets(p).Zero()
		return Secrets{}, corrupt("%v", err)
	}
	return Secrets(p), nil
}

var errEntries = errors.New("bad entry")

func validateEntries(entries map[string][]byte) error {
	if len(entries) > maxEntries {
		return fmt.Errorf("%w: %d entries, more than %d", errEntries, len(entries), maxEntries)
	}
	for name, v := range entries {
		if !validName(name) {
			return fmt.Errorf("%w: name %q is not 1 to %d bytes of a-z, 0-9, '.', '_' and '-'", errEntries, name, maxName)
		}
		if len(v) > maxValue {
			return fmt.Errorf("%w: %q is %d bytes, more than %d", errEntries, name, len(v), maxValue)
		}
	}
	return nil
}

func validName(name string) bool {
	if len(name) == 0 || len(name) > maxName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
