package natlab

import (
	"net/netip"
	"testing"
)

// conntrack's lines, as -L and -E print them, give both directions.
func TestParseFlow(t *testing.T) {
	want := Flow{
		Src: netip.MustParseAddrPort("10.0.1.2:7117"), Dst: netip.MustParseAddrPort("198.18.0.100:7117"),
		ReplySrc: netip.MustParseAddrPort("198.18.0.100:7117"), ReplyDst: netip.MustParseAddrPort("198.18.0.1:7117"),
	}
	for _, line := range []string{
		"udp      17 29 src=10.0.1.2 dst=198.18.0.100 sport=7117 dport=7117 packets=3 bytes=120 src=198.18.0.100 dst=198.18.0.1 sport=7117 dport=7117 packets=2 bytes=80 [ASSURED] mark=0 use=1",
		" [DESTROY] udp      17 src=10.0.1.2 dst=198.18.0.100 sport=7117 dport=7117 [UNREPLIED] src=198.18.0.100 dst=198.18.0.1 sport=7117 dport=7117",
	} {
		got, ok := parseFlow(line)
		if got.Packets != [2]uint64{} {
			if got.Packets != [2]uint64{3, 2} || got.Bytes != [2]uint64{120, 80} {
				t.Errorf("parseFlow(%q) counts %v packets, %v bytes", line, got.Packets, got.Bytes)
			}
			got.Packets, got.Bytes = [2]uint64{}, [2]uint64{}
		}
		if !ok || got != want {
			t.Errorf("parseFlow(%q) = %v, %v; want %v", line, got, ok, want)
		}
	}
	for _, bad := range []string{"", "conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.", "udp 17 src=10.0.1.2 dst=x sport=1 dport=2 src=1.2.3.4 dst=1.2.3.5 sport=1 dport=2"} {
		if f, ok := parseFlow(bad); ok {
			t.Errorf("parseFlow(%q) = %v, want no flow", bad, f)
		}
	}
}
