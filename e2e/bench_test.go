package e2e

import (
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
	"github.com/kith-project/kith/seed"
)

// BenchmarkRestoreEndToEnd runs "kith restore" as a real process into a
// fresh home: process start, phrase parsing, PBKDF2, derivation,
// certificate, keystore and bbolt writes.
func BenchmarkRestoreEndToEnd(b *testing.B) {
	p, err := seed.Generate(24)
	if err != nil {
		b.Fatal(err)
	}
	phrase := p.String()
	kithtest.Binary(b)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		d := kithtest.NewDevice(b)
		b.StartTimer()
		res := d.Run(phrase, "restore", "--device", "0")
		if res.Code != 0 {
			b.Fatal(res)
		}
	}
}

// BenchmarkReferenceVersionProcess is the floor under the end-to-end
// figure: starting the same binary to print its version.
func BenchmarkReferenceVersionProcess(b *testing.B) {
	kithtest.Binary(b)
	d := kithtest.NewDevice(b)
	for b.Loop() {
		if res := d.Run("", "version"); res.Code != 0 || !strings.Contains(res.Stdout, "kith") {
			b.Fatal(res)
		}
	}
}
