package runcmd

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kith-project/kith/internal/store"
)

func TestResolveAddr(t *testing.T) {
	for _, tc := range []struct{ in, wildcard, want string }{
		{":7117", "0.0.0.0", "0.0.0.0:7117"},
		{"localhost:7117", "0.0.0.0", "127.0.0.1:7117"},
		{"localhost:3478", "", "127.0.0.1:3478"},
		{"127.0.0.2:7117", "0.0.0.0", "127.0.0.2:7117"},
		{"[::1]:7117", "0.0.0.0", "[::1]:7117"},
	} {
		got, err := resolveAddr(context.Background(), tc.in, tc.wildcard)
		if err != nil || got.String() != tc.want {
			t.Errorf("%s: %v %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"nowhere", "localhost:99999", "localhost:port"} {
		if _, err := resolveAddr(context.Background(), in, ""); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

type host struct{ env map[string]string }

func (h host) OpenHome() (string, *store.Store, func() error, error) {
	return "", nil, nil, errors.New("no home in this test")
}
func (h host) LockPassphrase(string, string) ([]byte, error) { return nil, nil }
func (h host) Emit(any, func(io.Writer)) error               { return nil }
func (h host) BadInput(err error) error                      { return err }
func (h host) Stderr() io.Writer                             { return io.Discard }
func (h host) Version() string                               { return "test" }
func (h host) Getenv(k string) string                        { return h.env[k] }

func TestFlagsFromTheEnvironment(t *testing.T) {
	env := map[string]string{
		"KITH_LISTEN": ":7118", "KITH_HEARTBEAT": "5s", "KITH_STUN": "localhost:3478, 127.0.0.1:3479",
		"KITH_QUIET": "true", "KITH_LOG_LEVEL": "debug", "KITH_PORTMAP": "off", "KITH_INTRODUCE": "friends",
	}
	cmd := New(host{env})
	if err := cmd.ParseFlags([]string{"--heartbeat", "7s"}); err != nil {
		t.Fatal(err)
	}
	if err := fromEnv(cmd, host{env}.Getenv); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	if get("listen") != ":7118" || get("heartbeat") != "7s" || get("quiet") != "true" || get("log-level") != "debug" ||
		get("stun") != "[localhost:3478,127.0.0.1:3479]" || get("portmap") != "off" || get("introduce") != "friends" {
		t.Errorf("flags: listen %s heartbeat %s quiet %s log-level %s stun %s", get("listen"), get("heartbeat"), get("quiet"), get("log-level"), get("stun"))
	}
	for _, flag := range []string{"listen", "heartbeat", "stun", "quiet", "log-level", "portmap", "introduce"} {
		if EnvVars[flag] == "" || !strings.Contains(cmd.Long, EnvVars[flag]) {
			t.Errorf("--%s has no documented variable", flag)
		}
	}
	bad := New(host{map[string]string{"KITH_HEARTBEAT": "soon"}})
	if err := fromEnv(bad, host{map[string]string{"KITH_HEARTBEAT": "soon"}}.Getenv); err == nil || !strings.Contains(err.Error(), "KITH_HEARTBEAT") {
		t.Errorf("a bad KITH_HEARTBEAT: %v", err)
	}
}

func TestWebFlag(t *testing.T) {
	for _, bad := range []string{"nowhere", "example.org:7118", "7118"} {
		cmd := New(host{})
		cmd.SetArgs([]string{"--web", bad})
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), "--web") {
			t.Errorf("--web %s: %v, want a refusal naming --web", bad, err)
		}
	}
	cmd := New(host{map[string]string{"KITH_WEB": "off"}})
	if err := fromEnv(cmd, host{map[string]string{"KITH_WEB": "off"}}.Getenv); err != nil {
		t.Fatal(err)
	}
	if v := cmd.Flags().Lookup("web").Value.String(); v != "off" {
		t.Errorf("KITH_WEB=off gave --web %s", v)
	}
	if !strings.Contains(cmd.Long, "KITH_WEB") {
		t.Error("KITH_WEB is not documented")
	}
}
