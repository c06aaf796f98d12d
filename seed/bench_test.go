package seed

import (
	"crypto/ed25519"
	"testing"
)

// Run with: go test ./seed -run '^$' -bench . -benchmem
//
// BenchmarkReferenceEd25519NewKeyFromSeed is the yardstick measured in the
// same run: one device's keys cost a few SLIP-0010 HMAC chains, two ed25519
// key expansions and one X25519 base-point multiplication on top of it.

// BenchmarkDeriveDevice derives one device's keys from a seed: its signing
// key, its archive key and the window secret.
func BenchmarkDeriveDevice(b *testing.B) {
	seed := testSeed(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DeriveDevice(seed, 1); err != nil {
			b.Fatal(err)
		}
		if _, err := DeriveWindowSecret(seed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeed is BIP39's PBKDF2 (2048 rounds of HMAC-SHA512), phrase to
// seed.
func BenchmarkSeed(b *testing.B) {
	p := mustParse(b, vector24)
	b.ReportAllocs()
	for b.Loop() {
		if len(p.Seed("")) != SeedSize {
			b.Fatal("no seed")
		}
	}
}

// BenchmarkParsePhrase reads a messy 24-word phrase, checksum included.
func BenchmarkParsePhrase(b *testing.B) {
	typed := "  1. LEGAL\t2. winner\r\n3. thank 4. year 5. wave 6. sausage 7. worth 8. useful 9. legal 10. winner 11. thank 12. year " +
		"13. wave 14. sausage 15. worth 16. useful 17. legal 18. winner 19. thank 20. year 21. wave 22. sausage 23. worth 24. title\n"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePhrase(typed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReferenceEd25519NewKeyFromSeed is the reference: the standard
// library expanding one ed25519 key.
func BenchmarkReferenceEd25519NewKeyFromSeed(b *testing.B) {
	var s [ed25519.SeedSize]byte
	s[0] = 1
	b.ReportAllocs()
	for b.Loop() {
		_ = ed25519.NewKeyFromSeed(s[:])
	}
}
