package cli

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// The discover and netcheck tables fit in 80 columns, and what peers
// name themselves is shown without terminal controls.
func TestDiscoverAndNetcheckTables(t *testing.T) {
	var user seed.UserPublic
	var dev seed.DevicePublic
	for i := range user {
		user[i], dev[i] = 0xab, 0xcd
	}
	ms := func(v float64) *float64 { return &v }
	long6 := "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
	var out strings.Builder
	printDiscovered(&out, []control.Discovered{
		{DeviceID: dev, UserID: user, Name: evil, Kind: roster.KindFriend, Addr: long6},
		{DeviceID: dev, UserID: user, Kind: roster.KindOwn, Addr: "192.168.1.20:7117"},
	})
	printDiscovered(&out, nil)
	exp := time.Now()
	printNetcheck(&out, control.Netcheck{
		Candidates: []control.Candidate{
			{Kind: control.CandidateLocal, Addr: long6, Interface: "wlp0s20f3-very-long-interface"},
			{Kind: control.CandidateReflexive, Addr: "203.0.113.200:65535", Sources: []string{evil + " cdcdcdcdcdcd", "stun 198.51.100.1:3478"}},
			{Kind: control.CandidateMapped, Addr: "203.0.113.200:7117"},
		},
		NATType:     "hard",
		PortMapping: control.PortMapping{Protocol: "nat-pmp", Gateway: "192.168.100.254", External: "203.0.113.200:7117", Lifetime: "2h0m0s", ExpiresAt: &exp},
		Friends: []control.FriendReach{
			{UserID: user, Name: evil, Reachable: true, Path: "lan", Devices: []control.DeviceReach{
				{DeviceID: dev, Name: evil, Addr: long6, Reachable: true, RTTMillis: ms(0.4), Path: "relay", Via: evil},
				{DeviceID: dev, Name: "tablet", Addr: "10.0.0.9:7117", Error: "no answer within 2s"},
			}},
			{UserID: user, Name: "nodevices"},
		},
		OwnDevices: []control.DeviceReach{{DeviceID: dev, Name: "phone", Addr: "192.168.1.20:7117", Reachable: true, RTTMillis: ms(12), Path: "lan"}},
	})
	printNetcheck(&out, control.Netcheck{NATType: "unknown", PortMapping: control.PortMapping{Error: "off: listening on loopback 127.0.0.2:7117"}})
	printStatus(&out, control.Status{UserID: user, DeviceID: dev, NAT: "easy"}, time.Now())
	text := out.String()
	for _, line := range strings.Split(text, "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("%d columns: %q", n, line)
		}
		for _, bad := range []string{"\x1b", "\r", "\u202e", "\u2066"} {
			if strings.Contains(line, bad) {
				t.Errorf("%q in %q", bad, line)
			}
		}
	}
	for _, want := range []string{"mallory[31mevil", "No own device or friend answered", "NAT type: hard (symmetric", "Port mapping: nat-pmp 203.0.113.200:7117 via 192.168.100.254",
		"Port mapping: none: off: listening on loopback", "(own)", "nat     easy", "seen by mallory"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	t.Logf("\n%s", text)
}
