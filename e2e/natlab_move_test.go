//go:build natlab_rendezvous || natlab_relay || natlab_discover

package e2e

import (
	"fmt"
	"testing"

	"github.com/kith-project/kith/internal/natlab"
)

// moveTo stops p's agent and starts it again, with the same home, inside
// host h's namespace: the device went somewhere else.
func (p *person) moveTo(t *testing.T, h *natlab.Host, flags ...string) {
	t.Helper()
	if err := p.agent.Stop(); err != nil {
		t.Fatalf("stopping %s's agent: %v", p.id.Name, err)
	}
	p.Prefix = h.Prefix()
	p.agent = p.Start(fmt.Sprintf("0.0.0.0:%d", labPort), append([]string{"--heartbeat", labT.String()}, flags...)...)
}
