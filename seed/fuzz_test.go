package seed

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Run one target longer with, for example:
//
//	go test ./seed -run '^$' -fuzz '^FuzzParsePhrase$' -fuzztime 1m
//
// The seed corpus is the f.Add calls below plus testdata/fuzz/<target>/.

func FuzzParsePhrase(f *testing.F) {
	for _, s := range []string{
		vector12,
		vector24,
		strings.ToUpper(vector24),
		"\t " + strings.ReplaceAll(vector12, " ", "\r\n\u3000") + "\u00a0",
		"1. legal 2. winner 3. thank 4. year 5. wave 6. sausage 7. worth 8. useful 9. legal 10. winner 11. thank 12. yellow",
		"1) legal 7) worth 2) winner 8) useful 3) thank 9) legal 4) year 10) winner 5) wave 11) thank 6) sausage 12) yellow",
		"lega winn than year wave saus wort usef lega winn than yell",
		strings.Replace(vector12, "worth", "wroth", 1),
		strings.Repeat("abandon ", 12),
		"",
		"zoo",
		"1. 2.",
		"ｌｅｇａｌ",
		"\xff\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePhrase(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidPhrase) {
				t.Fatalf("error %v does not match ErrInvalidPhrase", err)
			}
			var we *WordError
			if errors.As(err, &we) && (we.Position < 1 || len(we.Suggestions) > maxSuggestions) {
				t.Fatalf("word error with position %d and %d suggestions", we.Position, len(we.Suggestions))
			}
			return
		}
		if !validCount(p.Words()) {
			t.Fatalf("parsed a phrase of %d words", p.Words())
		}
		q, err := ParsePhrase(p.String())
		if err != nil {
			t.Fatalf("String() %q does not parse again: %v", p, err)
		}
		if q.String() != p.String() {
			t.Fatalf("String() parses to %q, not %q", q, p)
		}
		back, err := PhraseFromEntropy(p.Entropy())
		if err != nil || back.String() != p.String() {
			t.Fatalf("the phrase's entropy does not give the phrase back: %v", err)
		}
	})
}

// addRecordSeeds adds the fixture's records, and a few broken ones, to a
// fuzz corpus.
func addRecordSeeds(f *testing.F) {
	fx := newCertFixture(f)
	cert, rev := fx.cert.Marshal(), fx.revoke.Marshal()
	many, err := fx.user.IssueDeviceCert(DeviceCert{
		Device: fx.device.Public(), Archive: fx.archive.Recipient(), Index: 7,
		Name: "Anna's phone 📱", Roles: strings.Fields("access relay always-on"),
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range [][]byte{
		cert, rev, many.Marshal(),
		cert[:len(cert)-1], rev[:len(rev)-1],
		append(bytes.Clone(cert), 0),
		[]byte("kith-cert\x02"), []byte("kith-revoke\x01"), nil,
	} {
		f.Add(b)
	}
}

func FuzzParseDeviceCert(f *testing.F) {
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		// The decoder alone is canonical: what it accepts, Marshal
		// reproduces byte for byte, whatever the signature.
		if c, err := decodeDeviceCert(b); err == nil {
			if got := c.Marshal(); !bytes.Equal(got, b) {
				t.Fatalf("decoded and marshalled again:\n got %x\nwant %x", got, b)
			}
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrWrongRecord) {
			t.Fatalf("decoding error %v matches no sentinel", err)
		}
		c, err := ParseDeviceCert(b)
		if err != nil {
			return
		}
		if err := c.Verify(); err != nil {
			t.Fatalf("a parsed certificate does not verify: %v", err)
		}
		if !bytes.Equal(c.Marshal(), b) {
			t.Fatal("a parsed certificate marshals to other bytes")
		}
	})
}

func FuzzParseRevocation(f *testing.F) {
	addRecordSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRevocation(b); err == nil {
			if got := r.Marshal(); !bytes.Equal(got, b) {
				t.Fatalf("decoded and marshalled again:\n got %x\nwant %x", got, b)
			}
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrWrongRecord) {
			t.Fatalf("decoding error %v matches no sentinel", err)
		}
		r, err := ParseRevocation(b)
		if err != nil {
			return
		}
		if err := r.Verify(); err != nil {
			t.Fatalf("a parsed revocation does not verify: %v", err)
		}
		if !bytes.Equal(r.Marshal(), b) {
			t.Fatal("a parsed revocation marshals to other bytes")
		}
	})
}
