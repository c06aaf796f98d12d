package transport

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"
)

func TestCertificateProfile(t *testing.T) {
	key := testKey("a")
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	c, err := newCertificate(key, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := leaf.Subject.CommonName, hex.EncodeToString(pubOf(key)); got != want {
		t.Errorf("CN = %s, want %s", got, want)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour)) || !leaf.NotAfter.Equal(now.Add(time.Hour)) {
		t.Errorf("validity %s..%s, want an hour either side of %s", leaf.NotBefore, leaf.NotAfter, now)
	}
	if leaf.SignatureAlgorithm != x509.PureEd25519 || leaf.SerialNumber.Sign() <= 0 {
		t.Errorf("signature %s, serial %s", leaf.SignatureAlgorithm, leaf.SerialNumber)
	}
	other, _ := newCertificate(key, nil, now)
	if leaf.SerialNumber.Cmp(other.Leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
	pub, err := peerKey([]*x509.Certificate{leaf})
	if err != nil || !pub.Equal(pubOf(key)) {
		t.Fatalf("peerKey = %x, %v; want the certificate's key", pub, err)
	}
}

func TestPeerKeyRefusals(t *testing.T) {
	key := testKey("a")
	good, _ := newCertificate(key, nil, time.Now())

	// An ed25519 certificate for one key signed by another.
	otherKey := testKey("b")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	parent := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pubOf(key), otherKey)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := x509.ParseCertificate(der)

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ec.PublicKey, ec)
	if err != nil {
		t.Fatal(err)
	}
	ecCert, _ := x509.ParseCertificate(der)

	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
	}{
		{"no certificate", nil},
		{"two certificates", []*x509.Certificate{good.Leaf, good.Leaf}},
		{"signed by another key", []*x509.Certificate{foreign}},
		{"ECDSA key", []*x509.Certificate{ecCert}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := peerKey(tc.chain); !errors.Is(err, ErrBadCertificate) {
				t.Fatalf("peerKey = %v, want ErrBadCertificate", err)
			}
		})
	}
}

func TestCertSourceRenews(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	src := &certSource{key: testKey("a"), now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	first, err := src.get()
	if err != nil {
		t.Fatal(err)
	}
	advance(29 * time.Minute)
	if c, _ := src.get(); c != first {
		t.Fatal("certificate renewed with more than half an hour left")
	}
	advance(2 * time.Minute)
	second, _ := src.get()
	if second == first {
		t.Fatal("certificate not renewed with less than half an hour left")
	}
	advance(-3 * time.Hour) // the clock went back
	if c, _ := src.get(); c == second || c.Leaf.NotBefore.After(now) {
		t.Fatal("certificate not renewed after the clock went back before its start")
	}
}

func TestSameKey(t *testing.T) {
	a, b := pubOf(testKey("a")), pubOf(testKey("b"))
	if !sameKey(a, append(ed25519.PublicKey(nil), a...)) || sameKey(a, b) || sameKey(a, a[:31]) || sameKey(nil, a) {
		t.Fatal("sameKey is wrong")
	}
}
