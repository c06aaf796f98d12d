package portmap

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// fakeRouter is a NAT-PMP server (RFC 6886) on UDP loopback, at port
// 5351 of an address of its own in 127.53.51.0/24 (go-nat-pmp always asks
// port 5351).
type fakeRouter struct {
	conn *net.UDPConn
	addr netip.Addr
	ext  netip.Addr

	mu       sync.Mutex
	mode     string // "grant", "refuse", "silent", "garbage"
	life     uint32 // the most it grants, in seconds
	requests []fakeRequest
}

type fakeRequest struct {
	op       byte
	internal uint16
	external uint16
	lifetime uint32
}

func newFakeRouter(t *testing.T, mode string) *fakeRouter {
	t.Helper()
	var conn *net.UDPConn
	var addr netip.Addr
	for i := 1; i < 255 && conn == nil; i++ {
		addr = netip.AddrFrom4([4]byte{127, 53, 51, byte(i)})
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 5351)))
		if err == nil {
			conn = c
		}
	}
	if conn == nil {
		t.Skip("no free 127.53.51.x:5351 to run a fake NAT-PMP router on")
	}
	r := &fakeRouter{conn: conn, addr: addr, ext: netip.MustParseAddr("203.0.113.7"), mode: mode, life: 3600}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return r
}

func (r *fakeRouter) set(mode string, life uint32) {
	r.mu.Lock()
	r.mode, r.life = mode, life
	r.mu.Unlock()
}

func (r *fakeRouter) seen() []fakeRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]fakeRequest(nil), r.requests...)
}

func (r *fakeRouter) serve() {
	buf := make([]byte, 64)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp := r.answer(buf[:n]); resp != nil {
			r.conn.WriteToUDPAddrPort(resp, from)
		}
	}
}

// answer speaks RFC 6886 §3.2 and §3.3 (or misbehaves, per mode).
func (r *fakeRouter) answer(req []byte) []byte {
	if len(req) < 2 || req[0] != 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fr := fakeRequest{op: req[1]}
	if (req[1] == 1 || req[1] == 2) && len(req) == 12 {
		fr.internal = binary.BigEndian.Uint16(req[4:])
		fr.external = binary.BigEndian.Uint16(req[6:])
		fr.lifetime = binary.BigEndian.Uint32(req[8:])
	}
	r.requests = append(r.requests, fr)
	switch r.mode {
	case "silent":
		return nil
	case "garbage":
		switch len(r.requests) % 3 {
		case 0:
			return []byte{0, 0x80} // too short
		case 1:
			return []byte{0, 0x85, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8} // wrong opcode
		default:
			return []byte{2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // "PCP"
		}
	}
	var code uint16
	if r.mode == "refuse" {
		code = 2
	}
	switch {
	case req[1] == 0:
		b := make([]byte, 12)
		b[1] = 0x80
		binary.BigEndian.PutUint16(b[2:], code)
		binary.BigEndian.PutUint32(b[4:], 1000)
		copy(b[8:], r.ext.AsSlice())
		return b
	case req[1] == 1 && len(req) == 12:
		b := make([]byte, 16)
		b[1] = 0x81
		binary.BigEndian.PutUint16(b[2:], code)
		binary.BigEndian.PutUint32(b[4:], 1000)
		binary.BigEndian.PutUint16(b[8:], fr.internal)
		ext := fr.external
		life := min(fr.lifetime, r.life)
		if fr.lifetime == 0 {
			ext = 0
		} else if ext == 0 {
			ext = 40000
		}
		binary.BigEndian.PutUint16(b[10:], ext)
		binary.BigEndian.PutUint32(b[12:], life)
		return b
	}
	return nil
}
