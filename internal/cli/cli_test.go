package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func run(t *testing.T, stdin string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(args, Env{
		Stdin:      strings.NewReader(stdin),
		Stdout:     &out,
		Stderr:     &errb,
		Getenv:     func(k string) string { return env[k] },
		IsTerminal: func(any) bool { return false },
	})
	return code, out.String(), errb.String()
}

func TestInitKeepsThePhraseOutOfArgvAndPrintsItOnce(t *testing.T) {
	home := t.TempDir()
	code, out, stderr := run(t, "", map[string]string{"KITH_SEED_PASSPHRASE": "extra"}, "--home", home, "--json", "init", "--name", "n")
	if code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	var res initResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(strings.Fields(res.Mnemonic)) != 24 || res.Name != "n" || res.DeviceIndex != 0 {
		t.Fatalf("init result %+v", res)
	}
	// restore needs the same extra word to reach the same user.
	code, out, _ = run(t, res.Mnemonic, map[string]string{"KITH_SEED_PASSPHRASE": "extra"}, "--home", t.TempDir(), "--json", "restore", "--device", "0")
	var again restoreResult
	json.Unmarshal([]byte(out), &again)
	if code != 0 || again.UserID != res.UserID {
		t.Fatalf("restore with the passphrase: %d %+v", code, again)
	}
	// The id command never prints the phrase.
	_, out, _ = run(t, "", nil, "--home", home, "id")
	if strings.Contains(out, strings.Fields(res.Mnemonic)[0]+" "+strings.Fields(res.Mnemonic)[1]) {
		t.Fatal("kith id printed the phrase")
	}
}

func TestCompletion(t *testing.T) {
	code, out, stderr := run(t, "", nil, "completion", "bash")
	if code != 0 || !strings.Contains(out, "kith") {
		t.Fatalf("completion bash: %d %s", code, stderr)
	}
}
