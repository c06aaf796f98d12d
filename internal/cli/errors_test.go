package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// badInputs drives the command line through inputs a person gets wrong
// and checks what they read: one "kith: …" line that says what is wrong,
// then "kith: hint: …" lines, the exit status, and no internals.
func TestBadInputs(t *testing.T) {
	home := t.TempDir()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	gif := filepath.Join(t.TempDir(), "code.gif")
	if err := os.WriteFile(gif, []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := func(args ...string) []string { return append([]string{"--home", home}, args...) }
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string // in the first line
		hint  string // in a hint line, if set
	}{
		{"unknown flag", "", h("id", "--bogus"), 2, "unknown flag: --bogus", `see "kith id --help"`},
		{"unknown command", "", h("statsu"), 2, `unknown command "statsu" for "kith"`, `did you mean "kith status"?`},
		{"unknown subcommand", "", h("pair", "shwo"), 2, `unknown command "shwo" for "kith pair"`, `did you mean "kith pair show"?`},
		{"help on nothing", "", h("help", "bogus"), 2, `unknown command "bogus"`, `see "kith --help"`},
		{"completion for an unknown shell", "", h("completion", "tcsh"), 2, `unknown command "tcsh" for "kith completion"`, ""},
		{"extra argument", "", h("id", "x"), 2, "kith id takes no arguments, got 1", `see "kith id --help"`},
		{"negative device", "abandon", h("keys", "export", "--device", "-1"), 2, `--device "-1" is not a whole number`, ""},
		{"bad duration", "", h("run", "--heartbeat", "soon"), 2, `--heartbeat "soon" is not a duration`, ""},
		{"bad word count", "", h("init", "--words", "13"), 2, "--words", ""},
		{"no phrase", "", h("restore", "--device", "0"), 2, "no seed phrase", ""},
		{"no device index", "", h("restore"), 2, "needs --device I", `"kith id" on a device shows its index`},
		{"bad word", "abandon abandn", h("restore", "--device", "0"), 2, "word 2", "check the phrase"},
		{"no identity", "", h("id"), 1, "no kith identity in", `run "kith init"`},
		{"device out of range", "abandon", h("keys", "export", "--device", "2147483647"), 2, "out of range", ""},
		{"both export modes", "abandon", h("keys", "export", "--device", "1", "--recovery"), 2, "not both", ""},
		{"bad listen", "", h("run", "--listen", "nowhere"), 2, "--listen", ""},
		{"no agent", "", h("friends"), 1, "no agent is running", "kith --home"},
		{"a file as the home", "", []string{"--home", file, "status"}, 1, "cannot reach the agent", "choose another --home"},
		{"below a file as the home", "", []string{"--home", filepath.Join(file, "x"), "status"}, 1, "cannot reach the agent", "choose another --home"},
		{"a folder as the image", "", h("pair", "scan", t.TempDir()), 2, "is a directory", ""},
		{"a missing image", "", h("pair", "scan", filepath.Join(home, "none.png")), 2, "no such file", ""},
		{"a GIF image", "", h("pair", "scan", gif), 2, "it is a GIF image, not a PNG or JPEG image", "save or convert it as PNG or JPEG"},
		{"an invite for days", "", h("pair", "show", "--ttl", "100h"), 2, "--ttl 100h0m0s is longer than an invite may last (24h0m0s)", "10m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tc.stdin, nil, tc.args...)
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if code != tc.code || !strings.HasPrefix(lines[0], "kith: ") || !strings.Contains(lines[0], tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d and a first line with %q", code, stderr, tc.code, tc.msg)
			}
			if stdout != "" {
				t.Errorf("an error printed on stdout: %q", stdout)
			}
			hinted := tc.hint == ""
			for _, l := range lines[1:] {
				if !strings.HasPrefix(l, "kith: hint: ") {
					t.Errorf("line %q is not a hint", l)
				}
				hinted = hinted || strings.Contains(l, tc.hint)
			}
			if !hinted {
				t.Errorf("no hint says %q: %q", tc.hint, stderr)
			}
			checkPlain(t, stderr)
		})
	}
}

// internals are what must never reach a user's screen.
var internals = regexp.MustCompile(`strconv\.|dial unix|http://kith|(^|: )(control|store|keystore|home|device|agent|pairing|seed): |kith: kith:`)

// checkPlain fails if msg shows a package name, a Go parser or a doubled
// prefix ("x: x: ").
func checkPlain(t *testing.T, msg string) {
	t.Helper()
	if m := internals.FindString(msg); m != "" {
		t.Errorf("the message shows %q: %q", m, msg)
	}
	for _, line := range strings.Split(msg, "\n") {
		parts := strings.Split(line, ": ")
		for i := 1; i < len(parts); i++ {
			if parts[i] == parts[i-1] && parts[i] != "" {
				t.Errorf("doubled %q in %q", parts[i], line)
			}
		}
	}
}

func TestJSONError(t *testing.T) {
	code, stdout, stderr := run(t, "", nil, "--home", t.TempDir(), "--json", "restore")
	var e struct{ Error, Kind, Hint string }
	if err := json.Unmarshal([]byte(stderr), &e); err != nil || code != 2 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q (%v)", code, stdout, stderr, err)
	}
	if !strings.Contains(e.Error, "needs --device I") || e.Kind != "bad_input" || !strings.Contains(e.Hint, "kith id") {
		t.Fatalf("JSON error %+v", e)
	}
	code, _, stderr = run(t, "", nil, "--home", t.TempDir(), "id", "--json")
	if err := json.Unmarshal([]byte(stderr), &e); err != nil || code != 1 || e.Kind != "failed" || strings.Contains(stderr, "kith: ") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestPortInUse(t *testing.T) {
	home := t.TempDir()
	if code, _, stderr := run(t, "", nil, "--home", home, "init"); code != 0 {
		t.Fatal(stderr)
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.LocalAddr().String()
	code, _, stderr := run(t, "", nil, "--home", home, "run", "--listen", addr)
	if code != 1 || strings.Count(stderr, addr) != 1 || !strings.Contains(stderr, "address already in use\n") ||
		!strings.Contains(stderr, "kith: hint: another program, or another kith run, uses that port") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	checkPlain(t, stderr)
}
