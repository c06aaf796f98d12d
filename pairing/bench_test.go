package pairing

import (
	"bytes"
	"crypto/ed25519"
	"image/png"
	"io"
	"testing"
	"time"
)

// The benchmarks below measure QR encoding and decoding of a typical invite
// and parsing of its code, each next to a reference measured in the same
// run: what the standard library takes for the step underneath.
//
//	go test ./pairing -run '^$' -bench . -benchmem

// BenchmarkQREncode writes a typical invite as a PNG at 8 pixels a module.
func BenchmarkQREncode(b *testing.B) {
	code := typicalCode(b)
	for b.Loop() {
		if err := WritePNG(io.Discard, code, 8); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReferencePNGEncode encodes the same image with image/png alone.
func BenchmarkReferencePNGEncode(b *testing.B) {
	img, err := png.Decode(bytes.NewReader(pngOf(b, typicalCode(b), 8)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := png.Encode(io.Discard, img); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQRDecode reads that PNG back: PNG decoding and QR detection.
func BenchmarkQRDecode(b *testing.B) {
	code := typicalCode(b)
	data := pngOf(b, code, 8)
	for b.Loop() {
		got, err := DecodeImage(bytes.NewReader(data))
		if err != nil || got != code {
			b.Fatal(err)
		}
	}
}

// BenchmarkReferencePNGDecode decodes the same PNG with image/png alone.
func BenchmarkReferencePNGDecode(b *testing.B) {
	data := pngOf(b, typicalCode(b), 8)
	for b.Loop() {
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseInvite parses and verifies a typical code.
func BenchmarkParseInvite(b *testing.B) {
	code := typicalCode(b)
	for b.Loop() {
		if _, err := ParseInvite(code, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReferenceBase32Decode decodes the same code's base32 alone.
func BenchmarkReferenceBase32Decode(b *testing.B) {
	payload := typicalCode(b)[len(CodePrefix):]
	for b.Loop() {
		if _, err := b32.DecodeString(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReferenceEd25519Verify verifies a version 1 invite's signature
// alone, the bulk of ParseInvite's work for that version (version 2 has a
// checksum instead).
func BenchmarkReferenceEd25519Verify(b *testing.B) {
	i, err := ParseInvite(goldenCode, time.Unix(1_799_999_999, 0))
	if err != nil {
		b.Fatal(err)
	}
	msg := signedMessage(i.appendUnsigned(nil))
	for b.Loop() {
		if !ed25519.Verify(i.Device[:], msg, i.Sig[:]) {
			b.Fatal("does not verify")
		}
	}
}

// BenchmarkHandshake runs a whole pairing between two Machines, both
// invites made and scanned, without the network.
func BenchmarkHandshake(b *testing.B) {
	now := t0.Add(time.Minute)
	for b.Loop() {
		a, c := newParty(b, 1, 2, time.Hour), newParty(b, 3, 4, time.Hour)
		hA, _ := a.scan(b, c, now)
		if r, _ := c.m.HandleHello(hA, a.devPub(), now); r.Status != StatusWaiting {
			b.Fatal(r)
		}
		hC, _ := c.scan(b, a, now)
		r, err := a.m.HandleHello(hC, c.devPub(), now)
		if err != nil || c.m.HandleReply(r, now) != nil || !a.m.Done() || !c.m.Done() {
			b.Fatal(err)
		}
	}
}
