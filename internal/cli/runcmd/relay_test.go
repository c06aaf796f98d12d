package runcmd

import (
	"strings"
	"testing"

	"github.com/kith-project/kith/agent"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "512K": 512 << 10, "2m": 2 << 20, "1G": 1 << 30, "3 MiB": 3 << 20, "10kb": 10 << 10, "100b": 100,
	} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5M", "lots", "9999999999G", "M"} {
		if _, err := parseBytes(in); err == nil || !strings.Contains(err.Error(), "K, M or G") {
			t.Errorf("parseBytes(%q) = %v", in, err)
		}
	}
}

// The defaults the flags show are the agent's.
func TestRelayFlagDefaults(t *testing.T) {
	cmd := New(host{map[string]string{"KITH_RELAY": "friends", "KITH_RELAY_QUOTA": "5G"}})
	if err := fromEnv(cmd, host{map[string]string{"KITH_RELAY": "friends", "KITH_RELAY_QUOTA": "5G"}}.Getenv); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	rate, _ := parseBytes(cmd.Flags().Lookup("relay-rate").DefValue)
	quota, _ := parseBytes(cmd.Flags().Lookup("relay-quota").DefValue)
	if rate != agent.DefaultRelayRate || quota != agent.DefaultRelayQuota || cmd.Flags().Lookup("relay").DefValue != string(agent.RelayOwn) {
		t.Errorf("defaults: rate %d quota %d relay %s", rate, quota, cmd.Flags().Lookup("relay").DefValue)
	}
	if get("relay") != "friends" || get("relay-quota") != "5G" {
		t.Errorf("from the environment: relay %s quota %s", get("relay"), get("relay-quota"))
	}
	for _, flag := range []string{"relay", "relay-rate", "relay-quota"} {
		if EnvVars[flag] == "" || !strings.Contains(cmd.Long, EnvVars[flag]) {
			t.Errorf("--%s has no documented variable", flag)
		}
	}
}
