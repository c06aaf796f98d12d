package transport

// Figures are measured with
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/transport
//
// BenchmarkHandshake is a full QUIC + mutual TLS 1.3 handshake with key
// pinning and the greeting, on loopback, a new connection each iteration;
// BenchmarkReferenceTLSHandshake is the same TLS handshake (same
// certificates, same verification) over net.Pipe, without QUIC or UDP.
// BenchmarkClassify is compared with BenchmarkReferenceClassify, the test
// oracle built on pion's STUN check.

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v2"
)

func BenchmarkHandshake(b *testing.B) {
	ka, kb := testKey("a"), testKey("b")
	client := listenT(b, Config{Key: ka, Listen: "127.0.0.2:0", Authorize: newAllowlist(kb).authorize})
	// Every round is a new handshake: no cap on their rate.
	server := listenT(b, Config{Key: kb, Listen: "127.0.0.3:0", Authorize: newAllowlist(ka).authorize, HandshakeRate: -1})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			// The dialer closes each connection; the server forgets it then.
			if _, err := server.Accept(ctx); err != nil {
				return
			}
		}
	})
	defer func() { cancel(); wg.Wait() }()

	b.ResetTimer()
	for b.Loop() {
		c, err := client.connect(ctx, server.LocalAddr(), pubOf(kb))
		if err != nil {
			b.Fatal(err)
		}
		c.close()
	}
}

func BenchmarkReferenceTLSHandshake(b *testing.B) {
	ka, kb := testKey("a"), testKey("b")
	certsA := &certSource{key: ka, now: time.Now}
	certsB := &certSource{key: kb, now: time.Now}
	verify := func(chain []*x509.Certificate, want ed25519.PublicKey, _ netip.AddrPort, dir Direction) error {
		peer, err := peerKey(chain)
		if err != nil {
			return err
		}
		if dir == Outbound && !sameKey(peer, want) {
			return ErrWrongPeer
		}
		return nil
	}
	serverConf := serverTLS(certsB, verify)
	clientConf := clientTLS(certsA, verify, pubOf(kb), netip.AddrPort{})

	for b.Loop() {
		c1, c2 := net.Pipe()
		srv, cli := tls.Server(c2, serverConf), tls.Client(c1, clientConf)
		errc := make(chan error, 1)
		go func() { errc <- srv.Handshake() }()
		if err := cli.Handshake(); err != nil {
			b.Fatal(err)
		}
		// The client is done before the server has checked it; wait.
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		c1.Close()
		c2.Close()
	}
}

var classifySink Kind

func benchPackets() [][]byte {
	quicShort := make([]byte, 1200)
	quicShort[0] = 0x41
	quicLong := make([]byte, 1200)
	quicLong[0] = 0xc3
	return [][]byte{
		quicShort,
		quicLong,
		stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw,
		{0x20, 1, 2, 3, 4, 5, 6, 7},
		make([]byte, 64),
	}
}

func BenchmarkClassify(b *testing.B) {
	pkts := benchPackets()
	for b.Loop() {
		for _, p := range pkts {
			classifySink = Classify(p)
		}
	}
}

func BenchmarkReferenceClassify(b *testing.B) {
	pkts := benchPackets()
	for b.Loop() {
		for _, p := range pkts {
			classifySink = refKind(p)
		}
	}
}
