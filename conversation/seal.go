package conversation

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/kith-project/kith/seed"
)

func newHash() hash.Hash { return sha256.New() }

// sealTo encrypts plain with age to the archive recipients.
func sealTo(recipients []seed.ArchiveRecipient, plain []byte) ([]byte, error) {
	rs := make([]age.Recipient, 0, len(recipients))
	for _, r := range recipients {
		ar, err := r.AgeRecipient()
		if err != nil {
			return nil, err
		}
		rs = append(rs, ar)
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, rs...)
	if err != nil {
		return nil, fmt.Errorf("conversation: sealing: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("conversation: sealing: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("conversation: sealing: %w", err)
	}
	return out.Bytes(), nil
}

// openWith decrypts an age payload with id, reading at most max bytes.
func openWith(id age.Identity, sealed []byte, max int) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(sealed), id)
	if err != nil {
		return nil, refusef("the payload is not sealed to this device: %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, refusef("the payload is damaged: %w", err)
	}
	if len(plain) > max {
		return nil, refusef("the payload is more than %d bytes", max)
	}
	return plain, nil
}

// At rest: topics and bodies are sealed with XChaCha20-Poly1305 under a
// per-conversation key, itself sealed under Self.AtRest. The additional
// data binds each sealed value to where it is kept.

func sealAtRest(key []byte, ad string, plain []byte) []byte {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return aead.Seal(nonce, nonce, plain, []byte(ad))
}

func openAtRest(key []byte, ad string, sealed []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < chacha20poly1305.NonceSizeX+aead.Overhead() {
		return nil, fmt.Errorf("conversation: a sealed value of %d bytes is too short", len(sealed))
	}
	plain, err := aead.Open(nil, sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:], []byte(ad))
	if err != nil {
		return nil, fmt.Errorf("conversation: opening a sealed value (another device's store, or a wrong key): %w", err)
	}
	return plain, nil
}
