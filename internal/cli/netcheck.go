package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

func newNetcheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "netcheck",
		Short: "Report this device's addresses, NAT type, port mapping, and which friends' agents answer now",
		Long: `netcheck reports how this device can be reached: its candidate addresses
(interfaces, the reflexive addresses peers and STUN servers saw, and the
router's port mapping), the NAT type they imply, the port mapping or why
there is none, and, probed now, whether each friend's and own device answers
a heartbeat within two seconds, with the round trip and the path.

NAT types: none (peers see an interface address), easy (one mapping whatever
the destination: hole punching works), hard (a new mapping per destination, a
symmetric NAT: a relay may be needed), unknown (fewer than two reports).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			nc, err := c.Netcheck(ctx)
			if err != nil {
				return agentError(err)
			}
			return g.emit(nc, func(w io.Writer) { printNetcheck(w, nc) })
		},
	}
}

// natText says what a NAT type means, for text output.
func natText(t string) string {
	switch t {
	case "none":
		return "none (peers see this device's own address)"
	case "easy":
		return "easy (endpoint-independent mapping)"
	case "hard":
		return "hard (symmetric: a new mapping per destination)"
	case "", "unknown":
		return "unknown (fewer than two peers or servers reported our address)"
	}
	return clip(t, 60)
}

func printNetcheck(w io.Writer, nc control.Netcheck) {
	fmt.Fprintln(w, "Candidates:")
	if len(nc.Candidates) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, c := range nc.Candidates {
		detail := ""
		switch c.Kind {
		case control.CandidateLocal:
			detail = orDash(c.Interface)
		case control.CandidateReflexive:
			detail = "seen by " + strings.Join(c.Sources, ", ")
		case control.CandidateMapped:
			detail = "router port mapping"
		}
		fmt.Fprintf(w, "  %-9s %-24s %s\n", clip(c.Kind, 9), clip(c.Addr, 24), clip(detail, 42))
	}
	fmt.Fprintf(w, "NAT type: %s\n", natText(nc.NATType))
	pm := nc.PortMapping
	if pm.External != "" {
		fmt.Fprintf(w, "Port mapping: %s %s via %s, lifetime %s\n", clip(pm.Protocol, 8), clip(pm.External, 24), clip(orDash(pm.Gateway), 16), clip(pm.Lifetime, 10))
	} else {
		fmt.Fprintf(w, "Port mapping: none: %s\n", clip(orDash(pm.Error), 62))
	}
	if len(nc.Friends) == 0 && len(nc.OwnDevices) == 0 {
		fmt.Fprintln(w, "No friends or own devices to probe.")
		return
	}
	// Within 80 columns: 10 + 12 + 6 + 21 + 7 + 6 and the gaps.
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tDEVICE\tANSWER\tADDRESS\tPATH\tRTT")
	row := func(user string, d control.DeviceReach) {
		answer, path := "no", "-"
		if d.Reachable {
			answer, path = "yes", orDash(d.Path)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", clip(user, 10), clip(orDash(d.Name), 12), answer, clip(orDash(d.Addr), 21), clip(path, 7), fmtMillis(d.RTTMillis, false))
	}
	for _, d := range nc.OwnDevices {
		row("(own)", d)
	}
	for _, f := range nc.Friends {
		if len(f.Devices) == 0 {
			fmt.Fprintf(tw, "%s\t-\tno\t-\t-\t-\n", clip(orDash(f.Name), 10))
		}
		for _, d := range f.Devices {
			row(orDash(f.Name), d)
		}
	}
	tw.Flush()
}
