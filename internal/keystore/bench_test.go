package keystore

import (
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// The benchmarks below measure Load against two references run alongside it:
// argon2id alone with the same parameters, and a bare XChaCha20-Poly1305 open
// of a payload of the same size. Run them with
//
//	go test -run '^$' -bench . -benchmem ./internal/keystore

func BenchmarkLoadSealed(b *testing.B) {
	dir := b.TempDir()
	if err := Save(dir, testSecrets(b), []byte("pw")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := Load(dir, []byte("pw"))
		if err != nil {
			b.Fatal(err)
		}
		s.Zero()
	}
}

func BenchmarkLoadUnsealed(b *testing.B) {
	dir := b.TempDir()
	if err := Save(dir, testSecrets(b), nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := Load(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Zero()
	}
}

// BenchmarkReferenceArgon2id is the key stretching alone, with Save's
// parameters.
func BenchmarkReferenceArgon2id(b *testing.B) {
	salt := randomBytes(b, saltSize)
	p := defaultParams
	for b.Loop() {
		argon2.IDKey([]byte("pw"), salt, p.Time, p.MemoryKiB, p.Threads, keySize)
	}
}

// BenchmarkReferenceXChaCha20Poly1305Open is a bare open of a payload the
// size of a device's secrets.
func BenchmarkReferenceXChaCha20Poly1305Open(b *testing.B) {
	plain, err := encodePayload(testSecrets(b))
	if err != nil {
		b.Fatal(err)
	}
	key := randomBytes(b, chacha20poly1305.KeySize)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		b.Fatal(err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		b.Fatal(err)
	}
	sealed := aead.Seal(nil, nonce, plain, []byte("header"))
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := aead.Open(plain[:0], nonce, sealed, []byte("header")); err != nil {
			b.Fatal(err)
		}
	}
}
