package agent

import (
	"encoding/json"
	"testing"

	"github.com/kith-project/kith/cluster"
	"github.com/kith-project/kith/roster"
)

func TestDecodeRosterDocOrder(t *testing.T) {
	doc := `{"friends":[{"user_id":"` + hex64(1) + `","status":"blocked"},{"user_id":"` + hex64(2) + `","status":"friend","paired_at":"2026-01-01T00:00:00Z"}],
		"devices":[{"device_id":"` + hex64(3) + `","user_id":"` + hex64(2) + `","kind":"friend"},{"device_id":"` + hex64(4) + `","user_id":"` + hex64(9) + `","kind":"friend"}],
		"revocations":["AAAA"]}`
	cs, err := decodeClusterCommand(cluster.Command{Kind: cluster.KindRosterMerge, Body: json.RawMessage(doc)})
	if err != nil {
		t.Fatal(err)
	}
	// The revocation first, the friend's device with its friend, the
	// device of a user not in the list dropped, the block last.
	want := []roster.Op{roster.OpRevoke, roster.OpPair, roster.OpStatus}
	if len(cs) != len(want) {
		t.Fatalf("changes %+v, want ops %v", cs, want)
	}
	for i, c := range cs {
		if c.Op != want[i] {
			t.Fatalf("change %d is %s, want %s", i, c.Op, want[i])
		}
	}
	if cs[1].Friend == nil || cs[1].Friend.UserID.ID() != hex64(2) {
		t.Fatalf("the device's pair carries friend %+v", cs[1].Friend)
	}
}

func hex64(b byte) string {
	const digits = "0123456789abcdef"
	s := make([]byte, 64)
	for i := range s {
		s[i] = '0'
	}
	s[62], s[63] = digits[b>>4], digits[b&15]
	return string(s)
}

func FuzzDecodeClusterCommand(f *testing.F) {
	for _, s := range []string{
		`{"kind":"roster","body":{"op":"status","user":"` + hex64(1) + `","status":"blocked"}}`,
		`{"kind":"roster.merge","body":{"friends":[],"devices":[],"revocations":[]}}`,
		`{"kind":"roster.merge","body":{"devices":[{"kind":"friend"}]}}`,
		`{"kind":"roster","body":[]}`, `{"kind":"other"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := cluster.DecodeCommand(b)
		if err != nil {
			return
		}
		cs, err := decodeClusterCommand(c)
		if err != nil {
			return
		}
		for _, ch := range cs {
			if ch.Op == roster.OpPair && ch.Device == nil {
				t.Fatalf("a pair without a device from %s", b)
			}
		}
	})
}
