package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/netip"
	"sync"
	"time"
)

// ALPN is the TLS application protocol of kith's QUIC connections.
const ALPN = "kith/1"

// Certificate lifetime: the window is centred on the moment the certificate
// is made, and it is remade when less than certRefresh is left.
const (
	certHalfLife = time.Hour
	certRefresh  = 30 * time.Minute
)

// certSource makes and caches this device's self-signed certificate.
type certSource struct {
	key        ed25519.PrivateKey // constant
	credential []byte             // constant
	now        func() time.Time   // constant

	mu   sync.Mutex
	cert *tls.Certificate // guarded by mu
}

// get returns a certificate valid at least certRefresh from now.
func (s *certSource) get() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil && now.Add(certRefresh).Before(s.cert.Leaf.NotAfter) && !now.Before(s.cert.Leaf.NotBefore) {
		return s.cert, nil
	}
	c, err := newCertificate(s.key, s.credential, now)
	if err != nil {
		return nil, err
	}
	s.cert = c
	return c, nil
}

// newCertificate makes the self-signed certificate of key described in the
// package comment.
func newCertificate(key ed25519.PrivateKey, credential []byte, now time.Time) (*tls.Certificate, error) {
	pub := key.Public().(ed25519.PublicKey)
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("transport: making certificate serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1)) // positive, as X.509 wants
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hex.EncodeToString(pub)},
		NotBefore:             now.Add(-certHalfLife),
		NotAfter:              now.Add(certHalfLife),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if credential != nil {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: credentialOID, Value: credential}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("transport: making certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("transport: parsing own certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// credentialOID names the certificate extension that carries
// Config.Credential: an OID under 2.25 (a UUID arc, free for anyone to use).
var credentialOID = asn1.ObjectIdentifier{2, 25, 190461725, 1998475311, 3066, 1}

// maxCredential bounds the credential read from a peer's certificate.
const maxCredential = 4096

// credentialOf returns the credential in a peer's certificate, or nil.
func credentialOf(leaf *x509.Certificate) []byte {
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(credentialOID) && len(ext.Value) <= maxCredential {
			return ext.Value
		}
	}
	return nil
}

// peerKey extracts the device key from a peer's certificate chain: exactly one
// certificate, an ed25519 key, and a valid self-signature.
func peerKey(chain []*x509.Certificate) (ed25519.PublicKey, error) {
	if len(chain) != 1 {
		return nil, fmt.Errorf("%w: want exactly one self-signed certificate, got %d", ErrBadCertificate, len(chain))
	}
	leaf := chain[0]
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: key is %T, want ed25519", ErrBadCertificate, leaf.PublicKey)
	}
	if err := leaf.CheckSignature(x509.PureEd25519, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return nil, fmt.Errorf("%w: not signed by its own key: %w", ErrBadCertificate, err)
	}
	return pub, nil
}

// sameKey compares two public keys in constant time.
func sameKey(a, b ed25519.PublicKey) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}

// verifyFunc decides on a peer's certificate chain once its TLS signature
// checked out. want is the key a dialer expects (nil when accepting); remote
// is the peer's address, the zero AddrPort when unknown.
type verifyFunc func(chain []*x509.Certificate, want ed25519.PublicKey, remote netip.AddrPort, dir Direction) error

// serverTLS is the TLS configuration for accepting connections. The per-client
// configuration closes over the client's address so that Authorize sees it.
func serverTLS(certs *certSource, verify verifyFunc) *tls.Config {
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() }
	base := func() *tls.Config {
		return &tls.Config{
			MinVersion:             tls.VersionTLS13,
			NextProtos:             []string{ALPN},
			SessionTicketsDisabled: true,
			ClientAuth:             tls.RequireAnyClientCert,
			GetCertificate:         getCert,
		}
	}
	conf := base()
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		var remote netip.AddrPort
		if hello.Conn != nil {
			remote = addrPortOf(hello.Conn.RemoteAddr())
		}
		c := base()
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			return verify(cs.PeerCertificates, nil, remote, Inbound)
		}
		return c, nil
	}
	return conf
}

// clientTLS is the TLS configuration for dialing want at remote.
func clientTLS(certs *certSource, verify verifyFunc, want ed25519.PublicKey, remote netip.AddrPort) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		NextProtos:             []string{ALPN},
		SessionTicketsDisabled: true,
		// The server's certificate is self-signed; VerifyConnection checks it.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return certs.get()
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verify(cs.PeerCertificates, want, remote, Outbound)
		},
	}
}
