// Command bench runs kith's benchmarks and prints a Markdown report that sets
// each one beside a reference measured in the same run.
//
// A figure on its own says little: the same code can run twice as fast on
// another machine, or on this one when nobody else is using it. So every
// benchmark that matters has a reference next to it, in the same package,
// named BenchmarkReference… (or …Reference): the standard library or a bare
// primitive doing the step underneath (an ed25519 key expansion, an argon2id
// call, a TLS handshake over a pipe, starting the binary to print its
// version). The ratio of the two, both measured in one run on one machine,
// travels much better than either figure.
//
// # Usage
//
// From anywhere inside the module:
//
//	go run ./bench [-count N] [-benchtime D] [-pkg REGEX] [-out FILE]
//
// bench finds every package folder with a _test.go file declaring a
// Benchmark function, keeps those whose folder (relative to the module root,
// such as "internal/keystore") matches -pkg, and runs, one package at a time,
//
//	go test -run '^$' -bench . -benchmem -count N [-benchtime D] ./FOLDER
//
// The raw output goes to stderr as it comes, so a long run shows progress;
// the report goes to -out, or stdout. A package that fails to build or
// whose benchmark fails is listed under Failures, the others are still
// reported, and bench exits with status 1.
//
// # Report
//
// The header names the date, the machine (GOOS/GOARCH, CPU model from
// /proc/cpuinfo, logical CPUs, load average), the Go version, the commit,
// and the command that reproduces the report. Then comes a table of
// comparisons: for each entry of the pairs table in report.go, the median
// ns/op of the benchmark and of its reference, and their ratio. An entry
// whose benchmarks did not run (in a package -pkg selects) is listed as
// missing, which is not an error.
// Last, one table per package gives every benchmark's median of each
// metric, custom ones from b.ReportMetric included, over the -count runs,
// and the spread of ns/op. Unpaired benchmarks appear there only.
//
// docs/benchmarks.md explains each figure and records a measured report.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errFailures) {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
}

// errFailures says the report was written but some benchmarks failed.
var errFailures = errors.New("bench: some packages failed; see the report's Failures section")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	count := fl.Int("count", 5, "run each benchmark `N` times; the report gives medians")
	benchtime := fl.String("benchtime", "", "passed to go test -benchtime: a duration such as 500ms, or a count such as 10x")
	pkgRE := fl.String("pkg", "", "only the package folders (relative to the module root) that match this `REGEX`")
	outFile := fl.String("out", "", "write the report to `FILE` instead of stdout")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench [-count N] [-benchtime D] [-pkg REGEX] [-out FILE]\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("bench: unexpected argument %q; choose packages with -pkg", fl.Arg(0))
	}
	if *count < 1 {
		return fmt.Errorf("bench: -count is %d; it must be at least 1", *count)
	}
	re, err := regexp.Compile(*pkgRE)
	if err != nil {
		return fmt.Errorf("bench: -pkg is not a regular expression: %w", err)
	}

	root, module, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	all, err := FindBenchmarkPackages(root)
	if err != nil {
		return err
	}
	var pkgs []string
	for _, p := range all {
		if re.MatchString(p) {
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("bench: no package with benchmarks matches -pkg %q (packages with benchmarks: %s)",
			*pkgRE, strings.Join(all, ", "))
	}

	m := machine(ctx, root)
	date := time.Now()
	testArgs := []string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(*count)}
	if *benchtime != "" {
		testArgs = append(testArgs, "-benchtime", *benchtime)
	}
	var results []Result
	var failures []string
	cpuLine := ""
	for i, p := range pkgs {
		fmt.Fprintf(stderr, "bench: [%d/%d] ./%s\n", i+1, len(pkgs), p)
		var buf bytes.Buffer
		cmd := exec.CommandContext(ctx, "go", append(slices.Clone(testArgs), "./"+p)...)
		cmd.Dir = root
		w := io.MultiWriter(&buf, stderr) // one writer, so exec serialises the two streams
		cmd.Stdout, cmd.Stderr = w, w
		runErr := cmd.Run()
		out, err := Parse(&buf)
		if err != nil {
			return err
		}
		results = append(results, out.Results...)
		importPath := module + "/" + p
		if p == "." {
			importPath = module
		}
		for _, f := range out.Failures {
			failures = append(failures, "./"+p+": "+strings.TrimPrefix(f, importPath+" "))
		}
		if out.CPU != "" {
			cpuLine = out.CPU
		}
		if runErr != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("bench: interrupted during ./%s", p)
			}
			if len(out.Failures) == 0 {
				failures = append(failures, fmt.Sprintf("./%s: go test: %v", p, runErr))
			}
		}
	}
	if m.CPU == "" {
		m.CPU = cpuLine
	}

	stats := Summarize(results, module)
	report := &Report{
		Machine:     m,
		Date:        date,
		Reproduce:   reproduce(fl),
		GoTest:      "go " + shellJoin(testArgs) + " ./PACKAGE",
		Packages:    pkgs,
		Stats:       stats,
		Comparisons: Compare(stats, pairs, re.MatchString),
		Failures:    failures,
	}
	var md bytes.Buffer
	if err := report.WriteMarkdown(&md); err != nil {
		return fmt.Errorf("bench: writing the report: %w", err)
	}
	if *outFile != "" {
		if err := os.WriteFile(*outFile, md.Bytes(), 0o644); err != nil {
			return fmt.Errorf("bench: writing the report: %w", err)
		}
	} else if _, err := stdout.Write(md.Bytes()); err != nil {
		return fmt.Errorf("bench: writing the report: %w", err)
	}
	if len(failures) > 0 {
		return errFailures
	}
	return nil
}

// benchFunc finds a benchmark declaration the way the testing package would
// accept it: "Benchmark" then nothing lower-case.
var benchFunc = regexp.MustCompile(`(?m)^func Benchmark[^\p{Ll}]`)

// FindBenchmarkPackages returns, sorted, the folders under root (relative
// to it, with "/" separators, "." for root itself) holding a _test.go file
// that declares a benchmark. It skips testdata, vendor, folders starting
// with "." or "_", and nested modules.
func FindBenchmarkPackages(root string) ([]string, error) {
	var pkgs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root {
				if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
					return filepath.SkipDir
				}
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), "_test.go") || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if slices.Contains(pkgs, rel) {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if benchFunc.Match(src) {
			pkgs = append(pkgs, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: looking for benchmarks: %w", err)
	}
	slices.Sort(pkgs)
	return pkgs, nil
}

// moduleRoot asks the go command for the main module's folder and path.
func moduleRoot(ctx context.Context) (dir, path string, err error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}\n{{.Path}}").Output()
	if err != nil {
		return "", "", fmt.Errorf("bench: finding the module (run bench inside kith's module): %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] == "" {
		return "", "", fmt.Errorf("bench: finding the module: go list printed %q; run bench inside kith's module", out)
	}
	return lines[0], lines[1], nil
}

// machine describes this machine. Anything it cannot learn stays empty.
func machine(ctx context.Context, root string) Machine {
	m := Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(), NumCPU: runtime.NumCPU()}
	cmd := exec.CommandContext(ctx, "go", "env", "GOVERSION", "GOOS", "GOARCH")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) == 3 {
			m.GoVersion, m.GOOS, m.GOARCH = f[0], f[1], f[2]
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	cmd = exec.CommandContext(ctx, "git", "describe", "--always", "--dirty", "--abbrev=12")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// cpuModel returns the first "model name" in /proc/cpuinfo's text, or ""
// (ARM kernels, for one, may not print it).
func cpuModel(cpuinfo string) string {
	for line := range strings.Lines(cpuinfo) {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// reproduce rebuilds the go run command line from the flags that were set,
// leaving out -out.
func reproduce(fl *flag.FlagSet) string {
	args := []string{"go", "run", "./bench"}
	fl.VisitAll(func(f *flag.Flag) {
		if f.Name == "out" {
			return
		}
		set := false
		fl.Visit(func(g *flag.Flag) { set = set || g.Name == f.Name })
		if set || f.Name == "count" {
			args = append(args, "-"+f.Name, f.Value.String())
		}
	})
	return shellJoin(args)
}

// shellJoin quotes for a POSIX shell whatever is not plainly safe.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
