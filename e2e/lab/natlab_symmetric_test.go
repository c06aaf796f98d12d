package lab

import (
	"testing"
	"time"

	"github.com/kith-project/kith/internal/natlab"
)

// The grid's symmetric cases. One side symmetric: hole punching may work
// or not, and the test accepts either a punched path or a relay through
// pub, and logs which. Both sides symmetric: no punching can work, and the
// two talk through pub. Each waits up to two minutes and logs the time.
func TestNATLabGridSymmetric(t *testing.T) {
	natlab.Require(t)
	t.Parallel()
	for _, c := range []struct {
		name string
		o    gridOptions
		want []string
	}{
		{"hA symmetric", gridOptions{symA: true}, []string{"punched", "relay via pub"}},
		{"both symmetric", gridOptions{symA: true, symB: true}, []string{"relay via pub"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := newGrid(t, c.o)
			path, took := g.waitPaths(t, 2*time.Minute, c.want...)
			g.logGrid(t, c.o, path, took)
			if !path.relayed() {
				g.keepsFlowing(t, "punched")
			}
		})
	}
}
