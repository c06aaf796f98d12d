// Package lab holds kith's network-namespace tests: the real kith binary
// on hosts behind nftables NAT routers (internal/natlab), as root; they
// skip elsewhere with a message naming what is missing. They live apart
// from package e2e so that go test runs them beside the other end-to-end
// tests, not after them: the keepalive test alone watches a punched path
// for ten minutes.
package lab

import (
	"flag"
	"os"
	"strconv"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
)

// labParallel is how many lab tests run at once unless -test.parallel
// says otherwise. They mostly wait (on timeouts, backoffs and the
// keepalive test's ten minutes), so more of them than CPUs share the
// machine well; each lab has namespaces of its own.
const labParallel = 6

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(labParallel))
	}
	code := m.Run()
	kithtest.Cleanup()
	os.Exit(code)
}
