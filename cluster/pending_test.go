package cluster

import (
	"path/filepath"
	"testing"
)

func TestPendingIsDurableAndOrdered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pending.db")
	p, err := openPending(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c"} {
		if err := p.push([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	k, v := p.first()
	if string(v) != "a" {
		t.Fatalf("first %q, want a", v)
	}
	if err := p.drop(k); err != nil {
		t.Fatal(err)
	}
	p.close()
	// A restart keeps what was not applied, in order.
	p, err = openPending(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if n := p.count(); n != 2 {
		t.Fatalf("%d pending after reopening, want 2", n)
	}
	if _, v := p.first(); string(v) != "b" {
		t.Fatalf("first after reopening %q, want b", v)
	}
	if err := p.push([]byte("d")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		k, v := p.first()
		if k == nil {
			break
		}
		got = append(got, string(v))
		p.drop(k)
	}
	if len(got) != 3 || got[0] != "b" || got[1] != "c" || got[2] != "d" {
		t.Fatalf("order %v, want [b c d]", got)
	}
}
