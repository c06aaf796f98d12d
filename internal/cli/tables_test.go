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

// evil is a name a peer might choose to spoof a terminal: colours, a
// carriage return, a bidi override and a long tail.
const evil = "mallory\x1b[31m\r\u202eevil\u2066 with a very long name indeed"

func TestTablesFitIn80ColumnsAndShowNamesSafely(t *testing.T) {
	var user seed.UserPublic
	var dev seed.DevicePublic
	for i := range user {
		user[i], dev[i] = 0xab, 0xcd
	}
	ms := func(v float64) *float64 { return &v }
	now := time.Now()
	old := now.Add(-30 * 24 * time.Hour)
	st := control.Status{
		UserID: user, DeviceID: dev, Name: evil, Listen: "[2001:db8::1]:7117", Quiet: true,
		PublicAddrs: []string{"203.0.113.200:65535", "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
		Peers: []control.PeerStatus{
			{DeviceID: dev, UserID: user, Name: evil, Kind: roster.KindFriend, Addr: "255.255.255.255:65535", LastSeen: &old, RTTMillis: ms(123456), ClockOffsetMillis: ms(-98765432)},
			{DeviceID: dev, UserID: user, Name: "phone", Kind: roster.KindOwn, Addr: "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535", Online: true, RTTMillis: ms(0.42), ClockOffsetMillis: ms(3.5), Path: "relay", Via: evil},
			{DeviceID: dev, UserID: user, Kind: roster.KindOwn},
		},
		Cluster: control.ClusterView{State: "candidate" + evil, Leader: dev.ID(), Voters: []string{dev.ID(), dev.ID(), dev.ID()}, Nonvoters: []string{dev.ID(), dev.ID()}, Pending: 123456},
		Relay:   control.RelayStatus{Policy: "friends" + evil, Sessions: 1 << 20, QuotaUsed: 1 << 63, QuotaBytes: ^uint64(0)},
	}
	var out strings.Builder
	printStatus(&out, st, now)
	fs := []control.FriendView{
		{UserID: user, Name: evil, Status: roster.StatusBlocked, SAS: "1234 5678 9012 3456 7890", Devices: make([]control.DeviceView, 12)},
		{UserID: user, Status: roster.StatusFriend},
	}
	printFriends(&out, fs)
	printDevices(&out, []control.OwnDevice{
		{DeviceID: dev, DeviceIndex: seed.MaxDeviceIndex, Name: evil, Roles: []string{"access", "archive", "always-on", "relay"}, Addr: "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535", Revoked: true},
		{DeviceID: dev, Name: "laptop", Self: true},
		{DeviceID: dev, Name: "phone", Online: true},
	})
	for _, line := range strings.Split(out.String(), "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("%d columns: %q", n, line)
		}
		for _, bad := range []string{"\x1b", "\r", "\u202e", "\u2066"} {
			if strings.Contains(line, bad) {
				t.Errorf("%q in %q", bad, line)
			}
		}
	}
	if !strings.Contains(out.String(), "mallory[31mevil") || !strings.Contains(out.String(), "-27h") ||
		!strings.Contains(out.String(), "is relayed via mallory[31mevil") ||
		!strings.Contains(out.String(), "123456 writes pending") || !strings.Contains(out.String(), "revoked") {
		t.Errorf("the tables:\n%s", out.String())
	}
	t.Logf("\n%s", out.String())
}
