package archive

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// benchSize is the history each benchmark seals or opens: 16 MiB, four
// blobs of the default chunk size.
const benchSize = 16 << 20

func benchHistory() []Record { return history(16, benchSize/16) }

func benchSeal(b *testing.B, c Compression) {
	k := newTestKeys(b)
	recs := benchHistory()
	opts := &Options{Compression: c}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Seal(context.Background(), recs, k.to(), opts); err != nil {
			b.Fatal(err)
		}
	}
}

func benchOpen(b *testing.B, c Compression) {
	k := newTestKeys(b)
	s, err := Seal(context.Background(), benchHistory(), k.to(), &Options{Compression: c})
	if err != nil {
		b.Fatal(err)
	}
	sealed := 0
	for _, bl := range s.Blobs {
		sealed += len(bl.Data)
	}
	b.ReportMetric(float64(sealed)/benchSize, "sealed/plain")
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Open(context.Background(), s.Blobs, k.archB, k.archA, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal is kith's archive path: pack, DEFLATE at its fastest, two
// age layers, on GOMAXPROCS workers.
func BenchmarkSeal(b *testing.B) { benchSeal(b, CompressFast) }

// BenchmarkSealStored is the archive path without compression: the cost of
// the two layers.
func BenchmarkSealStored(b *testing.B) { benchSeal(b, CompressNone) }

// BenchmarkOpen opens what BenchmarkSeal seals, with both keys.
func BenchmarkOpen(b *testing.B) { benchOpen(b, CompressFast) }

// BenchmarkOpenStored opens what BenchmarkSealStored seals.
func BenchmarkOpenStored(b *testing.B) { benchOpen(b, CompressNone) }

// BenchmarkReferenceXChaCha20Poly1305 is one raw XChaCha20-Poly1305 pass
// over the same bytes, on one goroutine.
func BenchmarkReferenceXChaCha20Poly1305(b *testing.B) {
	pack, err := Pack(benchHistory())
	if err != nil {
		b.Fatal(err)
	}
	aead, err := chacha20poly1305.NewX(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	out := make([]byte, 0, len(pack)+aead.Overhead())
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		out = aead.Seal(out[:0], nonce, pack, nil)
	}
}

// BenchmarkReferenceStockAge is the stock age pipeline `age -r A | age -r
// B` over the same bytes (no compression), processes started each time.
func BenchmarkReferenceStockAge(b *testing.B) {
	bin := stockAge(b)
	k := newTestKeys(b)
	pack, err := Pack(benchHistory())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		first := exec.Command(bin, "-r", k.archA.Recipient().String())
		second := exec.Command(bin, "-r", k.archB.Recipient().String())
		first.Stdin = bytes.NewReader(pack)
		pipe, err := first.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		second.Stdin = pipe
		second.Stdout = io.Discard
		if err := first.Start(); err != nil {
			b.Fatal(err)
		}
		if err := second.Run(); err != nil {
			b.Fatal(err)
		}
		if err := first.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReferenceAgeTwoLayers is two nested age layers over the same
// bytes in memory, on one goroutine, with no packing, naming or copying:
// the floor of the archive path's sealing cost.
func BenchmarkReferenceAgeTwoLayers(b *testing.B) {
	k := newTestKeys(b)
	pack, err := Pack(benchHistory())
	if err != nil {
		b.Fatal(err)
	}
	inner, _ := k.archA.Recipient().AgeRecipient()
	outer, _ := k.archB.Recipient().AgeRecipient()
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		in, err := sealLayer(inner, pack)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sealLayer(outer, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReferenceSHA256 is one SHA-256 pass over the same bytes: what
// naming the blobs costs.
func BenchmarkReferenceSHA256(b *testing.B) {
	pack, err := Pack(benchHistory())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		NameOf(pack)
	}
}
