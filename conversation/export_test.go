package conversation

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/kith-project/kith/internal/store"
)

// TestExportForget: an export parses back to the same View; Forget leaves
// no record of the conversation and the Book then acknowledges its
// envelopes without storing them again.
func TestExportForget(t *testing.T) {
	l := newLab(t)
	alice, bob := l.addUser("alice", 1), l.addUser("bob", 1)
	id := l.create(alice, Discussion, `tally("yes") >= 2`, "picnic on sunday", bob)
	a, b := alice.devs[0], bob.devs[0]
	if _, err := a.book.Post(id, "text", "bring cake"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.book.Vote(id, "yes"); err != nil {
		t.Fatal(err)
	}
	deliverAll(t, a, b)
	if _, err := b.book.Vote(id, "yes"); err != nil {
		t.Fatal(err)
	}
	deliverAll(t, b, a)
	want := l.show(a, id)
	if want.Outcome == nil {
		t.Fatal("not decided")
	}
	data, err := a.book.Export(id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseExport(data)
	if err != nil {
		t.Fatal(err)
	}
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if !bytes.Equal(wj, gj) || !reflect.DeepEqual(got.Outcome.Messages, want.Outcome.Messages) {
		t.Fatalf("export round trip:\n got %s\nwant %s", gj, wj)
	}
	envs, err := b.book.Envelopes(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.book.Forget(id); err != nil {
		t.Fatal(err)
	}
	if _, err := a.book.Show(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Show after Forget: %v, want ErrNotFound", err)
	}
	if n := countStored(t, a); n != 0 {
		t.Fatalf("%d envelopes stored after Forget", n)
	}
	for _, bucket := range []string{store.BucketConversations, store.BucketConvOutbox} {
		n := 0
		if err := a.st.List(bucket, func(string, []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d records left in %s", n, bucket)
		}
	}
	if len(a.book.Pending(b.self.Cert.Device, 100)) != 0 {
		t.Fatal("outbox items left for the forgotten conversation")
	}
	// Bob's device sends it all again: acknowledged, not stored.
	for _, e := range envs {
		ack, err := a.book.Receive(e)
		if err != nil || ack == nil {
			t.Fatalf("re-sent envelope: ack %v, err %v", ack != nil, err)
		}
	}
	if _, err := a.book.Show(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a re-sent conversation came back: %v", err)
	}
}

func TestParseExportRefuses(t *testing.T) {
	for _, in := range []string{"", "{}", `{"kith_export":2,"view":{}}`, `{"kith_export":1,"view":{}}`, `{"kith_export":1,"view":{},"x":1}`, `{"kith_export":1} {}`} {
		if _, err := ParseExport([]byte(in)); !errors.Is(err, ErrBadExport) {
			t.Errorf("ParseExport(%q): %v, want ErrBadExport", in, err)
		}
	}
}

func FuzzParseExport(f *testing.F) {
	f.Add([]byte(`{"kith_export":1,"view":{"ID":"00"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseExport(b)
		if err == nil && v.ID == (ID{}) {
			t.Fatal("accepted an export without an ID")
		}
	})
}
