package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A unit written by "kith service install" passes systemd-analyze verify.
func TestServiceUnit(t *testing.T) {
	home := t.TempDir()
	if code, _, stderr := run(t, "", nil, "--home", home, "init"); code != 0 {
		t.Fatalf("init: %s", stderr)
	}
	units := t.TempDir()
	code, stdout, stderr := run(t, "", nil, "--home", home, "--json", "service", "install", "--unit-dir", units,
		"--listen", ":7117", "--stun", "localhost:3478", "--quiet", "true")
	if code != 0 {
		t.Fatalf("install: exit %d %s", code, stderr)
	}
	var res serviceResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Unit != filepath.Join(units, "kith.service") || res.Active {
		t.Fatalf("install: %q %v", stdout, err)
	}
	b, err := os.ReadFile(res.Unit)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{`ExecStart="`, `--home "` + home + `" run`, `Environment="KITH_LISTEN=:7117"`, `Environment="KITH_STUN=localhost:3478"`, `Environment="KITH_QUIET=true"`, "WantedBy=default.target", "Restart=on-failure"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q:\n%s", want, unit)
		}
	}
	code, stdout, _ = run(t, "", nil, "--home", home, "--json", "service", "status", "--unit-dir", units)
	if code != 0 || !strings.Contains(stdout, `"unit": "`+res.Unit+`"`) || !strings.Contains(stdout, `"active": false`) {
		t.Errorf("status: %d %s", code, stdout)
	}

	if analyze, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed: the unit is not verified")
	} else {
		out, err := exec.Command(analyze, "verify", res.Unit).CombinedOutput()
		// Verification also complains about units the machine lacks, such
		// as network-online.target in a container; only lines about this
		// unit count.
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "kith.service") {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
		if err != nil && !strings.Contains(string(out), "kith.service") {
			t.Logf("systemd-analyze verify exited with %v about other units:\n%s", err, out)
		}
	}

	code, _, _ = run(t, "", nil, "--home", home, "service", "uninstall", "--unit-dir", units)
	if _, err := os.Stat(res.Unit); code != 0 || !os.IsNotExist(err) {
		t.Errorf("uninstall: exit %d, the unit: %v", code, err)
	}
	if code, _, stderr := run(t, "", nil, "--home", t.TempDir(), "service", "install", "--unit-dir", units); code != 1 || !strings.Contains(stderr, "no kith identity") {
		t.Errorf("install for an empty home: %d %s", code, stderr)
	}
}
