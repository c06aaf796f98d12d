package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testdata/kith.txt is the raw output of
//
//	go test -run '^$' -bench . -benchmem -count 2 -benchtime 200ms ./internal/transport ./seed
//
// run on kith, one package at a time, as bench does. testdata/odd.txt is the
// raw output of a throw-away module made to print everything odd that go
// test prints: SetBytes (MB/s), b.ReportMetric, sub-benchmarks, a benchmark
// writing to stdout between its name and its figures, b.Log, a failing
// benchmark, a package that does not build, and the same benchmarks with -v.

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseSample(t *testing.T, name string) *Output {
	t.Helper()
	out, err := Parse(bytes.NewReader(readSample(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// benchLines returns the lines of a sample that start with "Benchmark" and
// carry figures: what a reader counts by eye.
func benchLines(sample []byte) []string {
	var ls []string
	for l := range strings.Lines(string(sample)) {
		if strings.HasPrefix(l, "Benchmark") && strings.Contains(l, "ns/op") {
			ls = append(ls, l)
		}
	}
	return ls
}

func TestParseKithSample(t *testing.T) {
	sample := readSample(t, "kith.txt")
	out := parseSample(t, "kith.txt")
	if out.Goos != "linux" || out.Goarch != "amd64" || !strings.Contains(out.CPU, "Xeon") {
		t.Errorf("header: goos %q goarch %q cpu %q", out.Goos, out.Goarch, out.CPU)
	}
	lines := benchLines(sample)
	if len(out.Results) != len(lines) {
		t.Fatalf("%d results from %d benchmark lines", len(out.Results), len(lines))
	}
	if len(out.Failures) != 0 {
		t.Errorf("failures in a passing run: %q", out.Failures)
	}
	// Every result must say what its line says, field by field.
	for i, r := range out.Results {
		f := strings.Fields(lines[i])
		if want := strings.TrimSuffix(f[0], "-2"); r.Name != want || r.Procs != 2 {
			t.Errorf("line %d: name %q procs %d, want %q 2", i, r.Name, r.Procs, want)
		}
		if strconv.FormatInt(r.Iters, 10) != f[1] {
			t.Errorf("%s: iterations %d, line says %s", r.Name, r.Iters, f[1])
		}
		if len(r.Metrics) != 3 {
			t.Fatalf("%s: metrics %v", r.Name, r.Metrics)
		}
		for j, m := range r.Metrics {
			want, _ := strconv.ParseFloat(f[2+2*j], 64)
			if m.Value != want || m.Unit != f[3+2*j] {
				t.Errorf("%s: metric %d is %v %s, line says %s %s", r.Name, j, m.Value, m.Unit, f[2+2*j], f[3+2*j])
			}
		}
		wantPkg := "github.com/kith-project/kith/internal/transport"
		if strings.Contains(r.Name, "Seed") || strings.Contains(r.Name, "DeriveDevice") || strings.Contains(r.Name, "ParsePhrase") {
			wantPkg = "github.com/kith-project/kith/seed"
		}
		if r.Pkg != wantPkg {
			t.Errorf("%s: package %q, want %q", r.Name, r.Pkg, wantPkg)
		}
	}
}

func TestParseOddSample(t *testing.T) {
	out := parseSample(t, "odd.txt")
	count := map[string]int{}
	for _, r := range out.Results {
		count[r.Name]++
		if r.Pkg != "example.com/benchsample/odd" {
			t.Errorf("%s: package %q", r.Name, r.Pkg)
		}
	}
	want := map[string]int{
		"BenchmarkSHA256": 2, "BenchmarkCustom": 2, "BenchmarkSub/size=16": 2, "BenchmarkSub/size=4096": 2,
		// Two plain runs, one with its output between name and figures, and one -v run.
		"BenchmarkPrints": 3, "BenchmarkLogs": 3,
	}
	for name, n := range want {
		if count[name] != n {
			t.Errorf("%s: %d results, want %d", name, count[name], n)
		}
	}
	if len(count) != len(want) {
		t.Errorf("results for %v, want exactly %v", count, want)
	}

	for _, r := range out.Results {
		switch r.Name {
		case "BenchmarkSHA256":
			if v, ok := r.Value("MB/s"); !ok || v < 1000 {
				t.Errorf("SHA256 MB/s = %v, %v", v, ok)
			}
		case "BenchmarkCustom":
			if v, _ := r.Value("frames/op"); v != 42 {
				t.Errorf("custom metric frames/op = %v, want 42", v)
			}
			if v, _ := r.Value("hit-ratio"); v != 0.5 {
				t.Errorf("custom metric hit-ratio = %v, want 0.5", v)
			}
			if units := unitsOf(r); !slices.Equal(units, []string{"ns/op", "frames/op", "hit-ratio", "B/op", "allocs/op"}) {
				t.Errorf("custom units in order %v", units)
			}
		}
	}

	joined := strings.Join(out.Failures, "\n")
	for _, w := range []string{"BenchmarkFails", "example.com/benchsample/broken [build failed]", "FAIL example.com/benchsample/odd"} {
		if !strings.Contains(joined, w) {
			t.Errorf("failures %q do not mention %q", out.Failures, w)
		}
	}
}

func unitsOf(r Result) []string {
	var us []string
	for _, m := range r.Metrics {
		us = append(us, m.Unit)
	}
	return us
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		line  string
		name  string // "" when the line must give no result
		procs int
	}{
		{"BenchmarkX 10 5 ns/op", "BenchmarkX", 1},
		{"BenchmarkX-8 10 5 ns/op", "BenchmarkX", 8},
		{"Benchmark-2 10 5 ns/op", "Benchmark", 2},
		{"BenchmarkX-abc-4 10 5 ns/op", "BenchmarkX-abc", 4},
		{"BenchmarkX/a-b 10 5 ns/op", "BenchmarkX/a-b", 1},
		{"BenchmarkX/n=-1-2 10 5 ns/op", "BenchmarkX/n=-1", 2},
		{"BenchmarkX-+3 10 5 ns/op", "BenchmarkX-+3", 1},
		{"BenchmarkX-0 10 5 ns/op", "BenchmarkX-0", 1},
		{"BenchmarkX-2 10 5 ns/op\r", "BenchmarkX", 2},
		{"BenchmarkX-2 10 1e3 ns/op 7 custom/op", "BenchmarkX", 2},
		{"Benchmark_x 10 5 ns/op", "Benchmark_x", 1},

		{"", "", 0},
		{"Benchmark", "", 0},
		{"Benchmarks are 10 5 ns/op", "", 0},
		{"Benchmarkx 10 5 ns/op", "", 0},
		{"BenchmarkX-2 abc ns/op", "", 0},
		{"BenchmarkX-2 10", "", 0},
		{"BenchmarkX-2 10 5", "", 0},
		{"BenchmarkX-2 10 5 6", "", 0},
		{"BenchmarkX-2 10 5 ns/op 6", "", 0},
		{"BenchmarkX-2 0 5 ns/op", "", 0},
		{"BenchmarkX-2 -3 5 ns/op", "", 0},
		{"BenchmarkX-2 10 NaN ns/op", "", 0},
		{"BenchmarkX-2 10 +Inf ns/op", "", 0},
		{"BenchmarkX-2 10 1e999 ns/op", "", 0},
		{"BenchmarkX-2 99999999999999999999 5 ns/op", "", 0},
		{"  BenchmarkX-2 10 5 ns/op", "BenchmarkX", 2},
		{"pkg:", "", 0},
		{"pkg: ", "", 0},
		{"---", "", 0},
		{"--- FAIL:", "", 0},
		{"FAIL", "", 0},
		{"ok  \texample.com/x\t0.1s", "", 0},
		{"\x00\xff\xfe", "", 0},
		{"Benchmark\xff 10 5 ns/op", "Benchmark\xff", 1},
	}
	for _, tt := range tests {
		out, err := Parse(strings.NewReader(tt.line + "\n"))
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		switch {
		case tt.name == "" && len(out.Results) != 0:
			t.Errorf("%q: gave %+v, want nothing", tt.line, out.Results)
		case tt.name != "" && len(out.Results) != 1:
			t.Errorf("%q: gave %d results, want 1", tt.line, len(out.Results))
		case tt.name != "" && (out.Results[0].Name != tt.name || out.Results[0].Procs != tt.procs):
			t.Errorf("%q: name %q procs %d, want %q %d", tt.line, out.Results[0].Name, out.Results[0].Procs, tt.name, tt.procs)
		}
	}
}

// A name on one line and figures on a later one belong together, but a
// package change in between, or figures without any name, give nothing.
func TestParsePendingName(t *testing.T) {
	out, err := Parse(strings.NewReader("BenchmarkA-2   \tnoise from the benchmark\nmore noise\n100\t 5 ns/op\n200\t 6 ns/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 1 || out.Results[0].Name != "BenchmarkA" || out.Results[0].Iters != 100 {
		t.Errorf("got %+v, want one BenchmarkA over 100 iterations", out.Results)
	}
	out, err = Parse(strings.NewReader("BenchmarkA-2\npkg: other\n100\t 5 ns/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 0 {
		t.Errorf("figures attributed across a package change: %+v", out.Results)
	}
}

func TestParseLongLine(t *testing.T) {
	in := "BenchmarkA-2 1 5 ns/op\n" + strings.Repeat("x", 5<<20) + "\n"
	out, err := Parse(strings.NewReader(in))
	if err == nil {
		t.Fatal("a 5 MiB line was accepted silently")
	}
	if out == nil || len(out.Results) != 1 {
		t.Errorf("results before the long line lost: %+v", out)
	}
}

// FuzzParse checks that Parse never panics, that whatever it returns is
// well formed, and that printing the results back in go test's format and
// parsing them again gives the same results.
func FuzzParse(f *testing.F) {
	f.Add(readSample(f, "kith.txt"))
	f.Add(readSample(f, "odd.txt"))
	f.Add([]byte("BenchmarkX-2 \tnoise\n10 5 ns/op\n"))
	f.Add([]byte("pkg: a\nBenchmarkX/n=-1-2 10 5 ns/op 3 x/op\n--- FAIL: BenchmarkY\nFAIL a 1s\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Parse(bytes.NewReader(in))
		if err != nil {
			return // only an over-long line
		}
		var again strings.Builder
		pkg := ""
		for _, r := range out.Results {
			if !isBenchmarkName(r.Name) || r.Procs < 1 || r.Iters < 1 || len(r.Metrics) == 0 {
				t.Fatalf("malformed result %+v", r)
			}
			if r.Pkg != pkg {
				fmt.Fprintf(&again, "pkg: %s\n", r.Pkg)
				pkg = r.Pkg
			}
			fmt.Fprintf(&again, "%s-%d\t%d", r.Name, r.Procs, r.Iters)
			for _, m := range r.Metrics {
				if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) || m.Unit == "" {
					t.Fatalf("malformed metric %+v in %+v", m, r)
				}
				fmt.Fprintf(&again, "\t%s %s", strconv.FormatFloat(m.Value, 'g', -1, 64), m.Unit)
			}
			again.WriteString("\n")
		}
		out2, err := Parse(strings.NewReader(again.String()))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(out.Results, out2.Results, equalResult) {
			t.Fatalf("round trip changed the results:\n%+v\n%+v\nfrom\n%s", out.Results, out2.Results, again.String())
		}
	})
}

func equalResult(a, b Result) bool {
	return a.Pkg == b.Pkg && a.Name == b.Name && a.Procs == b.Procs && a.Iters == b.Iters &&
		slices.Equal(a.Metrics, b.Metrics)
}

func TestSummarizeMedians(t *testing.T) {
	rs := []Result{
		{Pkg: "m/p", Name: "BenchmarkA", Procs: 2, Iters: 1, Metrics: []Metric{{100, "ns/op"}, {7, "x/op"}}},
		{Pkg: "m/p", Name: "BenchmarkB", Procs: 2, Iters: 1, Metrics: []Metric{{10, "ns/op"}}},
		{Pkg: "m/p", Name: "BenchmarkA", Procs: 2, Iters: 1, Metrics: []Metric{{1, "ns/op"}, {9, "x/op"}}},
		{Pkg: "m/p", Name: "BenchmarkA", Procs: 2, Iters: 1, Metrics: []Metric{{3, "ns/op"}, {8, "x/op"}}},
		{Pkg: "m/p", Name: "BenchmarkB", Procs: 2, Iters: 1, Metrics: []Metric{{20, "ns/op"}}},
		{Pkg: "m", Name: "BenchmarkC", Procs: 1, Iters: 1, Metrics: []Metric{{5, "ns/op"}}},
	}
	ss := Summarize(rs, "m")
	if len(ss) != 3 {
		t.Fatalf("%d stats, want 3: %+v", len(ss), ss)
	}
	a, b, c := ss[0], ss[1], ss[2]
	if a.Pkg != "p" || a.Name != "A" || a.Runs != 3 || a.Med["ns/op"] != 3 || a.Med["x/op"] != 8 ||
		a.Min["ns/op"] != 1 || a.Max["ns/op"] != 100 || !slices.Equal(a.Units, []string{"ns/op", "x/op"}) {
		t.Errorf("A: %+v", a)
	}
	if got, want := a.Spread(), (100.0-1)/3; got != want {
		t.Errorf("A spread %v, want %v", got, want)
	}
	if b.Name != "B" || b.Med["ns/op"] != 15 { // even count: mean of the middle two
		t.Errorf("B: %+v", b)
	}
	if c.Pkg != "." || c.Name != "C" {
		t.Errorf("C: %+v", c)
	}
}

func TestCompareAndReport(t *testing.T) {
	out := parseSample(t, "kith.txt")
	const module = "github.com/kith-project/kith"
	stats := Summarize(out.Results, module)

	// The medians, worked out here from the sample's raw lines.
	median := func(name string) float64 {
		var vs []float64
		for _, r := range out.Results {
			if r.Name == name {
				v, _ := r.Value("ns/op")
				vs = append(vs, v)
			}
		}
		if len(vs) != 2 {
			t.Fatalf("%s: %d runs in the sample, want 2", name, len(vs))
		}
		return (vs[0] + vs[1]) / 2
	}
	wantRatio := median("BenchmarkDeriveDevice") / median("BenchmarkReferenceEd25519NewKeyFromSeed")

	all := func(string) bool { return true }
	cs := Compare(stats, pairs, all)
	if len(cs) != len(pairs) {
		t.Fatalf("%d comparisons for %d pairs", len(cs), len(pairs))
	}
	found := 0
	for _, c := range cs {
		inSample := c.Pkg == "seed" || c.Pkg == "internal/transport"
		if inSample != (c.BenchStat != nil && c.RefStat != nil) {
			t.Errorf("%+v: resolved %v, %v", c.Pair, c.BenchStat != nil, c.RefStat != nil)
		}
		if c.Pkg == "seed" {
			found++
			if math.Abs(c.Ratio-wantRatio) > 1e-9*wantRatio {
				t.Errorf("seed ratio %v, want %v", c.Ratio, wantRatio)
			}
		}
	}
	if found != 1 {
		t.Errorf("%d seed comparisons, want 1", found)
	}
	onlySeed := Compare(stats, pairs, func(p string) bool { return p == "seed" })
	if len(onlySeed) != 1 || onlySeed[0].Pkg != "seed" {
		t.Errorf("comparisons for seed only: %+v", onlySeed)
	}

	r := &Report{
		Machine:     Machine{GoVersion: "go1.x", GOOS: "linux", GOARCH: "amd64", CPU: "Some CPU", NumCPU: 2, Commit: "abc"},
		Date:        time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Reproduce:   "go run ./bench -count 2",
		GoTest:      "go test ./PACKAGE",
		Packages:    []string{"internal/transport", "seed"},
		Stats:       stats,
		Comparisons: cs,
		Failures:    []string{"FAIL example.com/x [build failed]"},
	}
	var md strings.Builder
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	s := md.String()
	for _, want := range []string{
		"2026-01-02 03:04 UTC", "linux/amd64, Some CPU, 2 logical CPUs", "go1.x", "abc",
		"`go run ./bench -count 2`",
		"| seed | DeriveDevice | ReferenceEd25519NewKeyFromSeed | ",
		" | " + formatRatio(wantRatio) + " |",
		"- internal/keystore: LoadSealed ↔ ReferenceArgon2id: missing BenchmarkLoadSealed and BenchmarkReferenceArgon2id",
		"- e2e: RestoreEndToEnd ↔ ReferenceVersionProcess: missing",
		"## seed\n", "## internal/transport\n",
		"| ParsePhrase | 2 | " + formatNum(median("BenchmarkParsePhrase")) + " | ",
		"## Failures\n\n- FAIL example.com/x [build failed]",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "| pairing |") {
		t.Errorf("a pair without results got a ratio row:\n%s", s)
	}
}

func TestReportCustomUnits(t *testing.T) {
	out := parseSample(t, "odd.txt")
	r := &Report{Stats: Summarize(out.Results, "example.com/benchsample")}
	var md strings.Builder
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	s := md.String()
	for _, want := range []string{"## odd\n", "| B/op | allocs/op | MB/s | frames/op | hit-ratio |", "| Custom | 2 |", "| Sub/size=4096 | 2 |"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "## Against references") {
		t.Errorf("a run without comparisons printed their table:\n%s", s)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{formatTime(0.4348), "0.43 ns"},
		{formatTime(11.78), "11.8 ns"},
		{formatTime(8232), "8.23 µs"},
		{formatTime(999_999), "1000 µs"},
		{formatTime(1_880_610), "1.88 ms"},
		{formatTime(2.5e9), "2.50 s"},
		{formatNum(1880610.4), "1880610"},
		{formatNum(11.78), "11.8"},
		{formatNum(0.4348), "0.435"},
		{formatRatio(5.234), "5.23×"},
		{formatRatio(0.91), "0.91×"},
		{formatRatio(123.4), "123×"},
		{formatRatio(0.0012), "0.0012×"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestFindBenchmarkPackages(t *testing.T) {
	root := t.TempDir()
	decl := "func " + "BenchmarkX(b *testing.B) {}\n"
	files := map[string]string{
		"x_test.go":               "package m\n\n" + decl,
		"a/x_test.go":             "package a\n\n" + decl,
		"a/y_test.go":             "package a\n\n" + decl,
		"a/deep/z_test.go":        "package deep\n\n" + decl,
		"b/x_test.go":             "package b\n\nfunc " + "Benchmarks(b *testing.B) {}\n",
		"c/testdata/x_test.go":    "package c\n\n" + decl,
		"d/go.mod":                "module d\n",
		"d/x_test.go":             "package d\n\n" + decl,
		"e/x.go":                  "package e\n\n" + decl,
		".hidden/x_test.go":       "package h\n\n" + decl,
		"f/x_test.go":             "package f\n\n// " + decl,
		"vendor/v/x_test.go":      "package v\n\n" + decl,
		"_skip/x_test.go":         "package s\n\n" + decl,
		"g/only_tests_x_test.go":  "package g\n\nfunc TestX(t *testing.T) {}\n",
		"h/Benchmark_test.go":     "package h\n\nfunc " + "Benchmark(b *testing.B) {}\n",
		"i/unicode_test.go":       "package i\n\nfunc " + "BenchmarkÄ(b *testing.B) {}\n",
		"j/lowerunicode_test.go":  "package j\n\nfunc " + "Benchmarkä(b *testing.B) {}\n",
		"k/generic_test.go":       "package k\n\nfunc " + "Benchmark_under(b *testing.B) {}\n",
		"l/indented_test.go":      "package l\n\n\tfunc " + "BenchmarkX(b *testing.B) {}\n",
		"m/notgo_test.go.orig":    "package m\n\n" + decl,
		"n/x_test.go/keep_me.txt": "a folder named like a test file",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := FindBenchmarkPackages(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".", "a", "a/deep", "h", "i", "k"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestShellJoin(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("sh not found: needed to check the quoting")
	}
	args := []string{"go", "test", "-run", "^$", "-pkg", "a|b", "it's", "", "$HOME", "./x"}
	out, err := exec.Command(sh, "-c", `for a in "$@"; do printf '[%s]' "$a"; done`, "sh", "ARGS").Output()
	if err != nil || string(out) != "[ARGS]" {
		t.Fatalf("sh does not behave: %q %v", out, err)
	}
	out, err = exec.Command(sh, "-c", `set -- `+shellJoin(args)+`; for a in "$@"; do printf '[%s]' "$a"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "[" + strings.Join(args, "][") + "]"
	if string(out) != want {
		t.Errorf("sh read %s back as %s", shellJoin(args), out)
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\n\nprocessor\t: 1\nmodel name\t: Other\n"
	if got := cpuModel(info); got != "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz" {
		t.Errorf("got %q", got)
	}
	if got := cpuModel("processor\t: 0\nBogoMIPS\t: 50.00\n"); got != "" {
		t.Errorf("no model name gave %q", got)
	}
}

func TestRunRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-count", "0"},
		{"-pkg", "("},
		{"-pkg", "^no package is called this$"},
		{"stray"},
		{"-nosuchflag"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if err == nil || errors.Is(err, errFailures) {
			t.Errorf("%q: error %v", args, err)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: printed a report: %s", args, stdout.String())
		}
	}
}

// TestRunModule runs bench end to end on a throw-away module: one package
// whose benchmarks pass, one whose benchmark fails.
func TestRunModule(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/tiny\n\ngo 1.24\n",
		"good/good_test.go": "package good\n\nimport \"testing\"\n\nfunc " +
			"BenchmarkAdd(b *testing.B) {\n\tx := 0\n\tfor b.Loop() {\n\t\tx++\n\t}\n\tb.ReportMetric(float64(min(x, 1)), \"ones/op\")\n}\n",
		"bad/bad_test.go": "package bad\n\nimport \"testing\"\n\nfunc " +
			"BenchmarkBroken(b *testing.B) { b.Fatal(\"broken on purpose\") }\n",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(root)
	t.Setenv("GOWORK", "off")
	t.Setenv("GOFLAGS", "-mod=mod")

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-count", "2", "-benchtime", "3x"}, &stdout, &stderr)
	if !errors.Is(err, errFailures) {
		t.Fatalf("run: %v, want errFailures\nstderr:\n%s", err, stderr.String())
	}
	s := stdout.String()
	for _, want := range []string{
		"- packages: bad, good\n",
		"`go run ./bench -benchtime 3x -count 2`",
		"## good\n", "| Add | 2 | ", "ones/op",
		"## Failures\n", "- ./bad: BenchmarkBroken\n", "- ./bad: FAIL example.com/tiny/bad",
		// kith's pairs are not in this module: reported missing, not an error.
		"- seed: DeriveDevice ↔ ReferenceEd25519NewKeyFromSeed: missing BenchmarkDeriveDevice and",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "| seed |") {
		t.Errorf("a ratio for benchmarks that did not run:\n%s", s)
	}
	if !strings.Contains(stderr.String(), "BenchmarkAdd") {
		t.Errorf("raw output not passed to stderr:\n%s", stderr.String())
	}

	out := filepath.Join(t.TempDir(), "report.md")
	stdout.Reset()
	if err := run(context.Background(), []string{"-count", "1", "-benchtime", "1x", "-pkg", "^good$", "-out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("run -pkg good: %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("-out given, yet stdout has %q", stdout.String())
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), "- packages: good\n") || strings.Contains(string(b), "Failures") ||
		strings.Contains(string(b), "seed") { // -pkg leaves out pairs of other packages
		t.Errorf("report file: %v\n%s", err, b)
	}
}
