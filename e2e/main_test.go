// Package e2e holds kith's end-to-end tests: each runs the real kith binary
// as separate processes with their own home folders, through
// internal/kithtest.
package e2e

import (
	"os"
	"testing"

	"github.com/kith-project/kith/internal/kithtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kithtest.Cleanup()
	os.Exit(code)
}
