package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the agent, every known device with its address, RTT and clock offset, and the cluster",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			st, err := c.Status(ctx)
			if err != nil {
				return agentError(err)
			}
			return g.emit(st, func(w io.Writer) { printStatus(w, st, time.Now()) })
		},
	}
}

func printStatus(w io.Writer, st control.Status, now time.Time) {
	fmt.Fprintf(w, "device  %s %q\n", st.DeviceID, st.Name)
	fmt.Fprintf(w, "user    %s\n", st.UserID)
	fmt.Fprintf(w, "listen  %s", st.Listen)
	if len(st.PublicAddrs) > 0 {
		fmt.Fprintf(w, "   public %s", strings.Join(st.PublicAddrs, ", "))
	}
	if st.Quiet {
		fmt.Fprint(w, "   quiet mode")
	}
	fmt.Fprintf(w, "\ncluster %s (leader %s, %d voters, %d non-voters)\n\n", st.Cluster.State, shortID(st.Cluster.Leader), len(st.Cluster.Voters), len(st.Cluster.Nonvoters))
	if len(st.Peers) == 0 {
		fmt.Fprintln(w, "No known devices yet: pair with \"kith pair show\" and \"kith pair scan\".")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tNAME\tKIND\tADDRESS\tLAST SEEN\tONLINE\tRTT\tCLOCK OFFSET")
	for _, p := range st.Peers {
		var last time.Time
		if p.LastSeen != nil {
			last = *p.LastSeen
		}
		online := "no"
		if p.Online {
			online = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", short(p.DeviceID), p.Name, p.Kind, orDash(p.Addr), fmtAgo(last, now), online, fmtMillis(p.RTTMillis), fmtMillis(p.ClockOffsetMillis))
	}
	tw.Flush()
}

func fmtMillis(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", *v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// short abbreviates a hex ID for text output.
func short(id interface{ ID() string }) string { return shortID(id.ID()) }

// shortID abbreviates a hex ID for text output.
func shortID(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
