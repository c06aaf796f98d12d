package runcmd

import (
	"fmt"
	"strconv"
	"strings"
)

// byteUnits are the suffixes parseBytes takes, powers of 1024.
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"gib", 1 << 30}, {"gb", 1 << 30}, {"g", 1 << 30},
	{"mib", 1 << 20}, {"mb", 1 << 20}, {"m", 1 << 20},
	{"kib", 1 << 10}, {"kb", 1 << 10}, {"k", 1 << 10},
	{"b", 1}, {"", 1},
}

// parseBytes reads a size for --relay-rate and --relay-quota: a whole
// number of bytes, optionally with a unit K, M or G (KiB, MiB, GiB; KB,
// MB and GB mean the same powers of 1024 here). It must be positive.
func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range byteUnits {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n <= 0 || n > (1<<62)/u.mult {
			break
		}
		return n * u.mult, nil
	}
	return 0, fmt.Errorf("%q is not a size: use a whole number of bytes, or one with K, M or G (for example 512K, 2M, 1G)", s)
}
