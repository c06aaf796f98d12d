package cluster

import (
	"encoding/json"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	good := []string{
		`{"op":"apply","command":{"kind":"roster","body":{"op":"status"}}}`,
		`{"op":"hello","hello":{"id":"ab","single":true,"last_index":3}}`,
		`{"op":"recover","servers":["ab"]}`,
		`{"op":"ping"}`,
	}
	for _, s := range good {
		if _, err := DecodeRequest([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{
		``, `{}`, `{"op":"nope"}`, `{"op":"apply"}`, `{"op":"apply","command":{"body":1}}`,
		`{"op":"hello"}`, `{"op":"hello","hello":{}}`, `{"op":"recover"}`,
		`{"op":"recover","servers":["a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a","a"]}`,
	}
	for _, s := range bad {
		if _, err := DecodeRequest([]byte(s)); err == nil {
			t.Errorf("%s: decoded", s)
		}
	}
}

func TestYields(t *testing.T) {
	alone := func(id string, last uint64) Hello { return Hello{ID: id, Single: true, LastIndex: last} }
	cases := []struct {
		a, b Hello
		want bool
	}{
		{alone("a", 5), Hello{ID: "b", LastIndex: 1}, true},  // alone yields to a cluster of several
		{Hello{ID: "a", LastIndex: 1}, alone("b", 9), false}, // never the other way
		{alone("a", 3), alone("b", 4), true},                 // the shorter log yields
		{alone("a", 4), alone("b", 3), false},
		{alone("b", 4), alone("a", 4), true}, // ties: the larger ID
		{alone("a", 4), alone("b", 4), false},
	}
	for _, c := range cases {
		if got := yields(c.a, c.b); got != c.want {
			t.Errorf("yields(%+v, %+v) = %v", c.a, c.b, got)
		}
		// Exactly one side of two alone yields.
		if c.a.Single && c.b.Single && yields(c.a, c.b) == yields(c.b, c.a) {
			t.Errorf("%+v and %+v both yield or neither does", c.a, c.b)
		}
	}
}

func TestVoterTarget(t *testing.T) {
	for n, want := range []int{1, 1, 1, 3, 3, 5, 5, 5} {
		if got := voterTarget(n); got != want {
			t.Errorf("voterTarget(%d) = %d, want %d", n, got, want)
		}
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"apply","command":{"kind":"roster","body":{}}}`,
		`{"op":"hello","hello":{"id":"ab","single":true}}`,
		`{"op":"recover","servers":["ab"]}`,
		`{"op":"ping"}`, `{"op":1}`, `[]`, `{"op":"apply","command":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes the same.
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRequest(out); err != nil {
			t.Fatalf("re-encoded %s: %v", out, err)
		}
	})
}

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"kind":"roster","body":{"op":"pair"}}`,
		`{"kind":"roster.merge","body":{"friends":[]},"hints":{"ab":"1.2.3.4:5"}}`,
		`{"kind":""}`, `null`, `{"kind":"x","hints":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		if c.Kind == "" || len(c.Hints) > 64 {
			t.Fatalf("accepted %+v", c)
		}
	})
}
