package portmap

import (
	"errors"
	"testing"
)

const routeTable = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
	"eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
	"wlan0\t00000000\t0101A8C0\t0003\t0\t0\t50\t00000000\t0\t0\t0\n" +
	"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"

func TestParseRoutes(t *testing.T) {
	gw, err := parseRoutes([]byte(routeTable))
	if err != nil || gw.String() != "192.168.1.1" {
		t.Fatalf("got %v, %v; want 192.168.1.1 (the lower metric)", gw, err)
	}
	for name, in := range map[string]string{
		"empty":     "",
		"header":    "Iface\tDestination\n",
		"no gw":     "h\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
		"down":      "h\neth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n",
		"bad hex":   "h\neth0\t00000000\tZZ0200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
		"short row": "h\neth0\t00000000\t010200C0\n",
	} {
		if _, err := parseRoutes([]byte(in)); !errors.Is(err, ErrNoGateway) {
			t.Errorf("%s: %v, want ErrNoGateway", name, err)
		}
	}
}

// FuzzParseRoutes: whatever the routing table holds, no panic, and a
// gateway found is an IPv4 address.
func FuzzParseRoutes(f *testing.F) {
	f.Add([]byte(routeTable))
	f.Add([]byte("h\n\t\t\t\n"))
	f.Add([]byte("h\neth0 00000000 01020304 0003 0 0 -1 00000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		gw, err := parseRoutes(b)
		if err == nil && !gw.Is4() {
			t.Fatalf("gateway %v", gw)
		}
	})
}
