package archive

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/kith-project/kith/seed"
)

// testKeys are a user's keys from a fixed seed: two devices and the
// recovery key.
type testKeys struct {
	devA, devB         seed.DeviceKey
	archA, archB, recv seed.ArchiveKey
}

func newTestKeys(t testing.TB) testKeys {
	t.Helper()
	s := bytes.Repeat([]byte{7}, seed.SeedSize)
	var k testKeys
	var err error
	if k.devA, k.archA, err = seed.DeriveDevice(s, 0); err != nil {
		t.Fatal(err)
	}
	if k.devB, k.archB, err = seed.DeriveDevice(s, 1); err != nil {
		t.Fatal(err)
	}
	if k.recv, err = seed.DeriveRecoveryArchive(s); err != nil {
		t.Fatal(err)
	}
	return k
}

// to returns recipients with the inner layer to A and the outer to B.
func (k testKeys) to() Recipients {
	return Recipients{Inner: k.archA.Recipient(), Outer: k.archB.Recipient()}
}

// history returns n records of text-like data of about size bytes each.
func history(n, size int) []Record {
	var out []Record
	for i := range n {
		var b bytes.Buffer
		for j := 0; b.Len() < size; j++ {
			fmt.Fprintf(&b, "conversation %d, message %d: shall we meet on Tuesday at %d? — yes, at the café.\n", i, j, j%24)
		}
		out = append(out, Record{Conversation: fmt.Sprintf("conv-%04d", i), Data: b.Bytes()[:size]})
	}
	return out
}

func sameRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Conversation != want[i].Conversation || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("record %d: got %q (%d bytes), want %q (%d bytes)", i, got[i].Conversation, len(got[i].Data), want[i].Conversation, len(want[i].Data))
		}
	}
}
