package cli

import (
	"strings"
	"testing"
)

// TestArchiveUsage: the archive commands' mistakes exit 2 with a reason,
// before any agent is asked.
func TestArchiveUsage(t *testing.T) {
	home := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"archive", "get", strings.Repeat("ab", 32)}, "--out FILE is required"},
		{[]string{"archive", "get", "abc", "--out", "x"}, "is not a blob name"},
		{[]string{"archive", "quota", "lots"}, "is not a size"},
		{[]string{"archive", "quota", "-1"}, ""},
		{[]string{"archive", "quota", "1G", "2G"}, "at most 1 arguments"},
		{[]string{"archive", "recover", "--devices", "0"}, "--devices is a number"},
		{[]string{"archive", "status", "extra"}, "takes no arguments"},
	} {
		code, _, stderr := run(t, "", nil, append([]string{"--home", home}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("kith %s: exit %d, stderr %q; want exit 2 with %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "2K": 2048, "3m": 3 << 20, " 1G ": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-5", "1.5G", "1T", "99999999999G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}
