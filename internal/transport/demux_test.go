package transport

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v2"
	"golang.org/x/net/ipv4"
)

// refKind is an independent statement of the classification in the package
// comment, written as the table reads, with pion's STUN check.
func refKind(p []byte) Kind {
	if len(p) == 0 {
		return KindGarbage
	}
	switch b := p[0]; {
	case b <= 0x03:
		if stun.IsMessage(p) && len(p)%4 == 0 && int(p[2])<<8|int(p[3]) == len(p)-20 {
			return KindSTUN
		}
		return KindGarbage
	case b <= 0x3f:
		return KindKith
	case b <= 0x7f:
		return KindQUIC
	case b <= 0xbf:
		return KindGarbage
	default:
		return KindQUIC
	}
}

func TestClassify(t *testing.T) {
	bindingRequest := stun.MustBuild(stun.NewTransactionIDSetter([12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}), stun.BindingRequest, stun.Fingerprint)
	for _, tc := range []struct {
		name string
		hex  string
		want Kind
	}{
		{"empty", "", KindGarbage},
		{"zero byte", "00", KindGarbage},
		{"STUN binding request", "000100002112a442" + "000000000000000000000000", KindSTUN},
		{"STUN binding success with attribute", "010100082112a442" + "0102030405060708090a0b0c" + "0020000400010203", KindSTUN},
		{"pion binding request", hex.EncodeToString(bindingRequest.Raw), KindSTUN},
		{"STUN wrong cookie", "000100002112a443" + "000000000000000000000000", KindGarbage},
		{"STUN length too long", "000100042112a442" + "000000000000000000000000", KindGarbage},
		{"STUN length not a multiple of 4", "000100022112a442" + "000000000000000000000000" + "0000", KindGarbage},
		{"STUN header truncated", "000100002112a442" + "0000000000", KindGarbage},
		{"0x03 with cookie", "030000002112a442" + "000000000000000000000000", KindSTUN},
		{"first kith type", "04", KindKith},
		{"kith with a STUN cookie", "040000002112a442" + "000000000000000000000000", KindKith},
		{"last kith type", "3fffff", KindKith},
		{"QUIC short header", "40", KindQUIC},
		{"QUIC short header high", "7f0102", KindQUIC},
		{"long header without fixed bit", "80000000", KindGarbage},
		{"version negotiation-like", "bf00000000", KindGarbage},
		{"QUIC long header", "c000000001", KindQUIC},
		{"QUIC long header high", "ff", KindQUIC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			if got := Classify(p); got != tc.want {
				t.Errorf("Classify(%s) = %s, want %s", tc.hex, got, tc.want)
			}
			if got := refKind(p); got != tc.want {
				t.Errorf("reference says %s, want %s: the table and the reference disagree", got, tc.want)
			}
		})
	}
}

// Every first byte, with and without a valid STUN header behind it.
func TestClassifyAllFirstBytes(t *testing.T) {
	for b := range 256 {
		for _, tail := range []string{"", "000000002112a442000000000000000000000000"[2:]} {
			p, _ := hex.DecodeString(tail)
			p = append([]byte{byte(b)}, p...)
			if got, want := Classify(p), refKind(p); got != want {
				t.Fatalf("Classify(%x) = %s, reference %s", p, got, want)
			}
			// quic-go passes on as non-QUIC only packets whose two top bits
			// are clear; datagrams must never look like QUIC, nor QUIC
			// packets like datagrams.
			switch k := Classify(p); k {
			case KindSTUN, KindKith:
				if b&0xc0 != 0 {
					t.Fatalf("Classify(%x) = %s, but QUIC would take it", p, k)
				}
			case KindQUIC:
				if b&0x40 == 0 {
					t.Fatalf("Classify(%x) = quic without the fixed bit", p)
				}
			}
		}
	}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x00})
	f.Add([]byte{0x04, 0x01})
	f.Add([]byte{0x40, 1, 2, 3})
	f.Add([]byte{0x80, 0, 0, 0, 1})
	f.Add([]byte{0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw)
	f.Fuzz(func(t *testing.T, p []byte) {
		k := Classify(p)
		if want := refKind(p); k != want {
			t.Fatalf("Classify(%x) = %s, reference %s", p, k, want)
		}
		switch k {
		case KindQUIC:
			if p[0]&0x40 == 0 {
				t.Fatalf("QUIC without the fixed bit: %x", p)
			}
		case KindSTUN:
			if !stun.IsMessage(p) || p[0]&0xc0 != 0 {
				t.Fatalf("STUN by Classify but not by pion or by the top bits: %x", p)
			}
		case KindKith:
			if p[0] < DatagramPrefixMin || p[0] > DatagramPrefixMax {
				t.Fatalf("kith datagram with type %#x", p[0])
			}
		}
	})
}

// packetConn must hand quic-go only admitted packets, copied into the slots
// quic-go owns, in order.
func TestPacketConnReadBatch(t *testing.T) {
	recv, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.2:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	send, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.3:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()

	var admitted [][]byte
	pc := newPacketConn(recv, func(p []byte, from netip.AddrPort) (bool, netip.AddrPort) {
		if from != addrPortOf(send.LocalAddr()) {
			t.Errorf("admit saw source %s, want %s", from, send.LocalAddr())
		}
		admitted = append(admitted, append([]byte(nil), p...))
		return p[0]%2 == 1, netip.AddrPort{} // keep odd first bytes
	}, nil)
	var want [][]byte
	for i := range 10 {
		p := bytes.Repeat([]byte{byte(i)}, 10+i)
		if i%2 == 1 {
			want = append(want, p)
		}
		if _, err := send.WriteTo(p, recv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}

	var got [][]byte
	for len(got) < len(want) {
		ms := make([]ipv4.Message, 8)
		bufs := make([][]byte, len(ms))
		for i := range ms {
			bufs[i] = make([]byte, 1500)
			ms[i].Buffers = [][]byte{bufs[i]}
			ms[i].OOB = make([]byte, 128)
		}
		n, err := pc.ReadBatch(ms, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if &ms[i].Buffers[0][0] != &bufs[i][0] {
				t.Fatalf("slot %d was handed another slot's buffer", i)
			}
			got = append(got, append([]byte(nil), ms[i].Buffers[0][:ms[i].N]...))
			if addrPortOf(ms[i].Addr) != addrPortOf(send.LocalAddr()) {
				t.Fatalf("slot %d has source %v", i, ms[i].Addr)
			}
		}
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("packet %d = %x, want %x", i, got[i], want[i])
		}
	}
	if len(admitted) != 10 {
		t.Fatalf("admit saw %d packets, want 10", len(admitted))
	}

	// The one-at-a-time paths filter too.
	for _, p := range [][]byte{{2}, {4}, {7, 7}} {
		if _, err := send.WriteTo(p, recv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 100)
	n, from, err := pc.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], []byte{7, 7}) || from.String() != send.LocalAddr().String() {
		t.Fatalf("ReadFrom = %x from %v, %v; want 0707", buf[:n], from, err)
	}
	for _, p := range [][]byte{{6}, {9}} {
		if _, err := send.WriteTo(p, recv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	n, _, _, _, err = pc.ReadMsgUDP(buf, make([]byte, 128))
	if err != nil || !bytes.Equal(buf[:n], []byte{9}) {
		t.Fatalf("ReadMsgUDP = %x, %v; want 09", buf[:n], err)
	}
}
