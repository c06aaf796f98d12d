package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A Pair names a benchmark and the reference it is compared with, both in
// the same package. Pkg is the package's folder relative to the module root.
type Pair struct {
	Pkg, Bench, Ref string // Bench and Ref without the "Benchmark" prefix
}

// pairs is the table of comparisons. A ratio is Bench's ns/op divided by
// Ref's, both medians of the same run; docs/benchmarks.md says what each
// one means.
var pairs = []Pair{
	{"seed", "DeriveDevice", "ReferenceEd25519NewKeyFromSeed"},
	{"internal/keystore", "LoadSealed", "ReferenceArgon2id"},
	{"internal/keystore", "LoadUnsealed", "ReferenceXChaCha20Poly1305Open"},
	{"internal/transport", "Handshake", "ReferenceTLSHandshake"},
	{"internal/transport", "Classify", "ReferenceClassify"},
	{"pairing", "QREncode", "ReferencePNGEncode"},
	{"pairing", "QRDecode", "ReferencePNGDecode"},
	{"pairing", "ParseInvite", "ReferenceEd25519Verify"},
	{"pairing", "ParseInvite", "ReferenceBase32Decode"},
	{"agent", "ScanToPaired", "ReferenceHandshakeOnly"},
	{"e2e", "RestoreEndToEnd", "ReferenceVersionProcess"},
	{"cluster/presence", "HeartbeatEncodeSign", "Ed25519SignReference"},
	{"cluster/presence", "HandleHeartbeat", "Ed25519VerifyReference"},
	{"archive", "Seal", "ReferenceXChaCha20Poly1305"},
	{"archive", "SealStored", "ReferenceXChaCha20Poly1305"},
	{"archive", "SealStored", "ReferenceAgeTwoLayers"},
	{"archive", "Seal", "ReferenceStockAge"},
	{"archive", "Open", "ReferenceXChaCha20Poly1305"},
	{"consensus", "Rule/quorum/members=10/expr", "ReferenceEd25519Verify"},
	{"consensus", "Rule/quorum/members=10000/expr", "ReferenceEd25519Verify"},
	{"consensus", "Rule/quorum/members=10000/expr", "Rule/quorum/members=10000/go"},
}

// A Stat summarises the runs of one benchmark.
type Stat struct {
	Pkg   string   // folder relative to the module root, "." for the root
	Name  string   // without the "Benchmark" prefix
	Procs int      // GOMAXPROCS it ran with
	Runs  int      // result lines seen
	Units []string // in the order first printed
	Med   map[string]float64
	Min   map[string]float64
	Max   map[string]float64
}

// Spread is (max-min)/median of ns/op, 0 when there is no ns/op.
func (s Stat) Spread() float64 {
	m := s.Med["ns/op"]
	if m == 0 {
		return 0
	}
	return (s.Max["ns/op"] - s.Min["ns/op"]) / m
}

// Summarize groups results by package, name and GOMAXPROCS, in the order
// they first appear, and takes the median, minimum and maximum of every
// unit. module is the module path, trimmed from package import paths.
func Summarize(results []Result, module string) []Stat {
	type key struct {
		pkg, name string
		procs     int
	}
	var order []key
	values := map[key]map[string][]float64{}
	units := map[key][]string{}
	runs := map[key]int{}
	for _, r := range results {
		k := key{relPkg(r.Pkg, module), strings.TrimPrefix(r.Name, "Benchmark"), r.Procs}
		if _, ok := values[k]; !ok {
			order = append(order, k)
			values[k] = map[string][]float64{}
		}
		runs[k]++
		for _, m := range r.Metrics {
			if _, ok := values[k][m.Unit]; !ok {
				units[k] = append(units[k], m.Unit)
			}
			values[k][m.Unit] = append(values[k][m.Unit], m.Value)
		}
	}
	stats := make([]Stat, 0, len(order))
	for _, k := range order {
		s := Stat{Pkg: k.pkg, Name: k.name, Procs: k.procs, Runs: runs[k], Units: units[k],
			Med: map[string]float64{}, Min: map[string]float64{}, Max: map[string]float64{}}
		for u, vs := range values[k] {
			slices.Sort(vs)
			s.Min[u], s.Max[u] = vs[0], vs[len(vs)-1]
			if n := len(vs); n%2 == 1 {
				s.Med[u] = vs[n/2]
			} else {
				s.Med[u] = (vs[n/2-1] + vs[n/2]) / 2
			}
		}
		stats = append(stats, s)
	}
	return stats
}

// relPkg turns an import path into a folder relative to the module root.
func relPkg(importPath, module string) string {
	if importPath == module {
		return "."
	}
	if rest, ok := strings.CutPrefix(importPath, module+"/"); ok {
		return rest
	}
	return importPath
}

// A Comparison is a Pair resolved against a run.
type Comparison struct {
	Pair
	BenchStat, RefStat *Stat   // nil when missing from the run
	Ratio              float64 // BenchStat ns/op ÷ RefStat ns/op; 0 unless both have ns/op
}

// Compare resolves each pair whose package is wanted against stats. Pairs
// whose benchmarks are absent come back with a nil Bench or Ref.
func Compare(stats []Stat, table []Pair, wanted func(pkg string) bool) []Comparison {
	find := func(pkg, name string) *Stat {
		for i := range stats {
			if stats[i].Pkg == pkg && stats[i].Name == name {
				return &stats[i]
			}
		}
		return nil
	}
	var cs []Comparison
	for _, p := range table {
		if !wanted(p.Pkg) {
			continue
		}
		c := Comparison{Pair: p, BenchStat: find(p.Pkg, p.Bench), RefStat: find(p.Pkg, p.Ref)}
		if c.BenchStat != nil && c.RefStat != nil && c.RefStat.Med["ns/op"] > 0 {
			c.Ratio = c.BenchStat.Med["ns/op"] / c.RefStat.Med["ns/op"]
		}
		cs = append(cs, c)
	}
	return cs
}

// Machine describes where a report was measured.
type Machine struct {
	GoVersion    string // "go1.26.8"
	GOOS, GOARCH string
	CPU          string // model name
	NumCPU       int    // logical CPUs usable by the process (nproc)
	LoadAvg      string // /proc/loadavg's first three fields when the run began, "" if unknown
	Commit       string // git describe output, "" if unknown
}

// A Report is everything WriteMarkdown prints.
type Report struct {
	Machine
	Date        time.Time
	Reproduce   string   // the go run ./bench command line
	GoTest      string   // the go test command, with the package list elided
	Packages    []string // folders run, relative to the module root
	Stats       []Stat
	Comparisons []Comparison
	Failures    []string
}

// WriteMarkdown prints the report as Markdown: a header, the comparisons
// with references, then one table per package.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# kith benchmarks\n\n")
	fmt.Fprintf(&b, "- date: %s\n", r.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %s/%s, %s, %d logical CPUs", r.GOOS, r.GOARCH, orUnknown(r.CPU), r.NumCPU)
	if r.LoadAvg != "" {
		fmt.Fprintf(&b, ", load average %s at the start", r.LoadAvg)
	}
	fmt.Fprintf(&b, "\n- go: %s\n", orUnknown(r.GoVersion))
	if r.Commit != "" {
		fmt.Fprintf(&b, "- commit: %s\n", r.Commit)
	}
	fmt.Fprintf(&b, "- packages: %s\n", strings.Join(r.Packages, ", "))
	fmt.Fprintf(&b, "- ran: `%s`\n", r.GoTest)
	fmt.Fprintf(&b, "- reproduce: `%s`\n\n", r.Reproduce)
	b.WriteString("Figures are medians over the runs; spread is (max − min) / median of ns/op. " +
		"A ratio is the benchmark's median ns/op divided by its reference's, both from this run.\n\n")

	if len(r.Comparisons) > 0 {
		b.WriteString("## Against references\n\n")
		b.WriteString("| package | benchmark | reference | benchmark time/op | reference time/op | ratio |\n")
		b.WriteString("|---|---|---|--:|--:|--:|\n")
		var missing []string
		for _, c := range r.Comparisons {
			if c.BenchStat == nil || c.RefStat == nil {
				var absent []string
				if c.BenchStat == nil {
					absent = append(absent, "Benchmark"+c.Bench)
				}
				if c.RefStat == nil {
					absent = append(absent, "Benchmark"+c.Ref)
				}
				missing = append(missing, fmt.Sprintf("- %s: %s ↔ %s: missing %s",
					c.Pkg, c.Bench, c.Ref, strings.Join(absent, " and ")))
				continue
			}
			ratio := "n/a"
			if c.Ratio > 0 {
				ratio = formatRatio(c.Ratio)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", c.Pkg, c.Bench, c.Ref,
				formatTime(c.BenchStat.Med["ns/op"]), formatTime(c.RefStat.Med["ns/op"]), ratio)
		}
		if len(missing) > 0 {
			b.WriteString("\nMissing from this run:\n\n")
			b.WriteString(strings.Join(missing, "\n"))
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}

	for _, pkg := range packagesOf(r.Stats) {
		var ss []Stat
		for _, s := range r.Stats {
			if s.Pkg == pkg {
				ss = append(ss, s)
			}
		}
		fmt.Fprintf(&b, "## %s\n\n", pkg)
		extra := extraUnits(ss)
		b.WriteString("| benchmark | runs | ns/op | time/op | spread")
		for _, u := range extra {
			fmt.Fprintf(&b, " | %s", u)
		}
		b.WriteString(" |\n|---|--:|--:|--:|--:")
		b.WriteString(strings.Repeat("|--:", len(extra)))
		b.WriteString("|\n")
		for _, s := range ss {
			name := s.Name
			if sameName(ss, s) > 1 { // run with several -cpu values
				name += "-" + strconv.Itoa(s.Procs)
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s", name, s.Runs,
				cell(s, "ns/op", formatNum), cell(s, "ns/op", formatTime), formatPercent(s))
			for _, u := range extra {
				fmt.Fprintf(&b, " | %s", cell(s, u, formatNum))
			}
			b.WriteString(" |\n")
		}
		b.WriteString("\n")
	}

	if len(r.Failures) > 0 {
		b.WriteString("## Failures\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// packagesOf lists the packages of stats in order of first appearance.
func packagesOf(stats []Stat) []string {
	var pkgs []string
	for _, s := range stats {
		if !slices.Contains(pkgs, s.Pkg) {
			pkgs = append(pkgs, s.Pkg)
		}
	}
	return pkgs
}

// sameName counts the stats named like s.
func sameName(stats []Stat, s Stat) int {
	n := 0
	for _, t := range stats {
		if t.Name == s.Name {
			n++
		}
	}
	return n
}

// extraUnits lists the units other than ns/op that any of stats has:
// B/op and allocs/op first, then the rest in order of appearance.
func extraUnits(stats []Stat) []string {
	var us []string
	for _, std := range []string{"B/op", "allocs/op"} {
		for _, s := range stats {
			if slices.Contains(s.Units, std) {
				us = append(us, std)
				break
			}
		}
	}
	for _, s := range stats {
		for _, u := range s.Units {
			if u != "ns/op" && !slices.Contains(us, u) {
				us = append(us, u)
			}
		}
	}
	return us
}

func cell(s Stat, unit string, format func(float64) string) string {
	v, ok := s.Med[unit]
	if !ok {
		return ""
	}
	return format(v)
}

func formatPercent(s Stat) string {
	if _, ok := s.Med["ns/op"]; !ok || s.Runs < 2 {
		return ""
	}
	return fmt.Sprintf("%.0f%%", 100*s.Spread())
}

// formatNum prints whole numbers from 100 up, three significant digits
// below.
func formatNum(v float64) string {
	if v >= 100 || v <= -100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// formatTime prints nanoseconds with a readable unit and three significant
// digits.
func formatTime(ns float64) string {
	units := []struct {
		div  float64
		name string
	}{{1e9, "s"}, {1e6, "ms"}, {1e3, "µs"}}
	for _, u := range units {
		if ns >= u.div {
			return sig3(ns/u.div) + " " + u.name
		}
	}
	return sig3(ns) + " ns"
}

// sig3 prints x (at least 1 when a unit was chosen) with about three
// significant digits and no exponent.
func sig3(x float64) string {
	switch {
	case x < 10:
		return strconv.FormatFloat(x, 'f', 2, 64)
	case x < 100:
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

func formatRatio(x float64) string {
	if x < 0.01 {
		return strconv.FormatFloat(x, 'g', 2, 64) + "×"
	}
	return sig3(x) + "×"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
