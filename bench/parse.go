package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A Result is one benchmark result line of "go test -bench" output.
type Result struct {
	Pkg     string   // import path from the last "pkg:" line, "" before any
	Name    string   // full name, "BenchmarkSeed" or "BenchmarkX/sub", without the -N suffix
	Procs   int      // the -N suffix (GOMAXPROCS), 1 when there is none
	Iters   int64    // iterations the figures are averaged over
	Metrics []Metric // in the order printed: ns/op first, then B/op, MB/s, custom units…
}

// A Metric is one value and its unit, such as 1234 "ns/op" or 3 "allocs/op".
// Custom metrics from b.ReportMetric look the same.
type Metric struct {
	Value float64
	Unit  string
}

// Value returns the result's value for unit, and whether it has one.
func (r Result) Value(unit string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// Output is what Parse makes of a stream of "go test -bench" output.
type Output struct {
	Goos, Goarch, CPU string   // from the last "goos:", "goarch:" and "cpu:" lines
	Results           []Result // in the order they appeared
	Failures          []string // "FAIL <pkg>" lines and "--- FAIL: <benchmark>" lines, as text
}

// Parse reads the standard output of "go test -bench" (any number of
// packages, any -count) and returns its results. Lines it does not recognise
// are skipped: logs, PASS and ok lines, test output. A result whose name was
// printed on an earlier line than its figures, because the benchmark wrote
// to stdout in between, is still attributed to that name. The only error is
// one from reading r.
func Parse(r io.Reader) (*Output, error) {
	out := new(Output)
	var pkg, pending string // pending: a benchmark name still waiting for its figures
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if k, v, ok := headerLine(line); ok {
			switch k {
			case "pkg":
				pkg, pending = v, ""
			case "goos":
				out.Goos = v
			case "goarch":
				out.Goarch = v
			case "cpu":
				out.CPU = v
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "FAIL" && len(f) >= 2:
			out.Failures = append(out.Failures, "FAIL "+strings.Join(f[1:], " "))
			pending = ""
		case f[0] == "---" && len(f) >= 3 && f[1] == "FAIL:":
			name, _ := splitProcs(f[2])
			out.Failures = append(out.Failures, strings.TrimSpace(pkg+" "+name))
		case isBenchmarkName(f[0]):
			name, procs := splitProcs(f[0])
			if iters, metrics, ok := figures(f[1:]); ok {
				out.Results = append(out.Results, Result{Pkg: pkg, Name: name, Procs: procs, Iters: iters, Metrics: metrics})
				pending = ""
			} else {
				pending = f[0]
			}
		case pending != "":
			if iters, metrics, ok := figures(f); ok {
				name, procs := splitProcs(pending)
				out.Results = append(out.Results, Result{Pkg: pkg, Name: name, Procs: procs, Iters: iters, Metrics: metrics})
				pending = ""
			}
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("bench: reading benchmark output: %w", err)
	}
	return out, nil
}

// headerLine recognises the "key: value" lines go test prints before a
// package's benchmarks.
func headerLine(line string) (key, value string, ok bool) {
	k, v, found := strings.Cut(line, ": ")
	if !found {
		return "", "", false
	}
	switch k {
	case "pkg", "goos", "goarch", "cpu":
		return k, strings.TrimSpace(v), true
	}
	return "", "", false
}

// isBenchmarkName reports whether s names a benchmark the way the testing
// package does: "Benchmark" followed by nothing or by a rune that is not a
// lower-case letter ("Benchmarks" is a word, not a benchmark).
func isBenchmarkName(s string) bool {
	rest, ok := strings.CutPrefix(s, "Benchmark")
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return !unicode.IsLower(r)
}

// splitProcs splits "BenchmarkX/y-8" into "BenchmarkX/y" and 8. A name
// without a numeric suffix, or whose suffix is not after the last "/", has
// procs 1.
func splitProcs(s string) (string, int) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 || strings.IndexByte(s[i:], '/') >= 0 {
		return s, 1
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n <= 0 || strings.HasPrefix(s[i+1:], "+") {
		return s, 1
	}
	return s[:i], n
}

// figures parses "ITERATIONS VALUE UNIT VALUE UNIT…". All of it must parse:
// a positive iteration count, then at least one pair, each a finite number
// and a unit.
func figures(f []string) (int64, []Metric, bool) {
	if len(f) < 3 || len(f)%2 != 1 {
		return 0, nil, false
	}
	iters, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || iters <= 0 {
		return 0, nil, false
	}
	ms := make([]Metric, 0, len(f)/2)
	for i := 1; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, nil, false
		}
		unit := f[i+1]
		if _, err := strconv.ParseFloat(unit, 64); err == nil {
			return 0, nil, false // a number where a unit belongs
		}
		ms = append(ms, Metric{Value: v, Unit: unit})
	}
	return iters, ms, true
}
