package portmap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
)

// ErrNoGateway: the routing table has no IPv4 default route.
var ErrNoGateway = errors.New("portmap: no IPv4 default gateway")

// DefaultGateway returns the gateway of the IPv4 default route with the
// lowest metric, from /proc/net/route (Linux). Elsewhere it fails.
func DefaultGateway() (netip.Addr, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("portmap: reading the routing table: %w", err)
	}
	return parseRoutes(b)
}

// maxRouteLines bounds what parseRoutes reads.
const maxRouteLines = 4096

// parseRoutes finds the default gateway in the text of /proc/net/route:
// a header line, then one route per line with hexadecimal fields
// Iface, Destination, Gateway, Flags, RefCnt, Use, Metric, Mask, …, the
// addresses in the kernel's (little-endian) byte order. A default route is
// up (flag 0x1), has a gateway (0x2), and destination and mask 0.
func parseRoutes(b []byte) (netip.Addr, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 512), 4096)
	var (
		best   netip.Addr
		metric = -1
	)
	for n := 0; sc.Scan() && n < maxRouteLines; n++ {
		if n == 0 {
			continue // the header
		}
		f := bytes.Fields(sc.Bytes())
		if len(f) < 8 {
			continue
		}
		dst, err1 := hex32(f[1])
		gw, err2 := hex32(f[2])
		flags, err3 := strconv.ParseUint(string(f[3]), 16, 16)
		m, err4 := strconv.Atoi(string(f[6]))
		mask, err5 := hex32(f[7])
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil || m < 0 {
			continue
		}
		if dst != 0 || mask != 0 || flags&0x3 != 0x3 || gw == 0 {
			continue
		}
		var a [4]byte
		binary.LittleEndian.PutUint32(a[:], gw)
		if metric < 0 || m < metric {
			best, metric = netip.AddrFrom4(a), m
		}
	}
	if !best.IsValid() {
		return netip.Addr{}, ErrNoGateway
	}
	return best, nil
}

// hex32 reads eight hexadecimal digits as the kernel printed them: the
// address's bytes read as a little-endian uint32, printed as a number.
func hex32(b []byte) (uint32, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("want 8 hex digits, got %d", len(b))
	}
	var raw [4]byte
	if _, err := hex.Decode(raw[:], b); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(raw[:]), nil
}
