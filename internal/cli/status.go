package cli

import (
	"fmt"
	"github.com/kith-project/kith/seed"
	"io"
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
	if st.Revoked {
		fmt.Fprintf(w, "REVOKED %s\n", clip(st.RevokedMessage, 160))
	}
	fmt.Fprintf(w, "device  %s\n", st.DeviceID)
	fmt.Fprintf(w, "name    %s\n", clip(st.Name, 70))
	fmt.Fprintf(w, "user    %s\n", st.UserID)
	fmt.Fprintf(w, "listen  %s", clip(st.Listen, 50))
	if st.Quiet {
		fmt.Fprint(w, "   quiet mode")
	}
	for _, a := range st.PublicAddrs {
		fmt.Fprintf(w, "\npublic  %s", clip(a, 70))
	}
	if st.NAT != "" {
		fmt.Fprintf(w, "\nnat     %s", clip(st.NAT, 70))
	}
	fmt.Fprintf(w, "\ncluster %s (leader %s, %d voters, %d non-voters)\n", clip(st.Cluster.State, 10), shortID(st.Cluster.Leader), len(st.Cluster.Voters), len(st.Cluster.Nonvoters))
	if st.Cluster.State == "revoked" {
		fmt.Fprintln(w, "        this device was revoked: your other devices refuse it; restore one with a new index")
	}
	if st.Cluster.Pending > 0 {
		fmt.Fprintf(w, "        %d writes pending: they wait for a quorum of your devices\n", st.Cluster.Pending)
	}
	if st.Relay.Policy != "" {
		fmt.Fprintf(w, "relay   %s: %d sessions, %s of %s today\n", clip(st.Relay.Policy, 10), st.Relay.Sessions, fmtBytes(st.Relay.QuotaUsed), fmtBytes(st.Relay.QuotaBytes))
	}
	fmt.Fprintln(w)
	if len(st.Peers) == 0 {
		fmt.Fprintln(w, "No known devices yet: pair with \"kith pair show\" and \"kith pair scan\".")
		return
	}
	// Within 80 columns: 12 + 10 + 6 + 21 + 7 + 6 + 6, and the gaps. An
	// online peer's SEEN is the path it is reached by.
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tNAME\tKIND\tADDRESS\tSEEN\tRTT\tCLOCK")
	var relayed []control.PeerStatus
	for _, p := range st.Peers {
		seen := "online"
		if p.Online && p.Path != "" {
			seen = p.Path
		}
		if p.Online && p.Path == "relay" {
			relayed = append(relayed, p)
		}
		if !p.Online {
			var last time.Time
			if p.LastSeen != nil {
				last = *p.LastSeen
			}
			seen = fmtAgo(last, now)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.DeviceID.Short(), clip(orDash(p.Name), 10), clip(string(p.Kind), 6), clip(orDash(p.Addr), 21), clip(seen, 7), fmtMillis(p.RTTMillis, false), fmtMillis(p.ClockOffsetMillis, true))
	}
	tw.Flush()
	for _, p := range relayed {
		fmt.Fprintf(w, "%s is relayed via %s\n", p.DeviceID.Short(), clip(orDash(p.Via), 50))
	}
}

// fmtMillis prints a duration in milliseconds in at most six characters
// ("0.4ms", "120ms", "+1.2s", "-45m"), signed if asked for.
func fmtMillis(v *float64, signed bool) string {
	if v == nil {
		return "-"
	}
	ms := *v
	sign := ""
	if signed {
		sign = "+"
	}
	if ms < 0 {
		sign, ms = "-", -ms
	}
	var s string
	switch {
	case ms < 9.95:
		s = fmt.Sprintf("%.1fms", ms)
	case ms < 999.5:
		s = fmt.Sprintf("%.0fms", ms)
	case ms < 9950:
		s = fmt.Sprintf("%.1fs", ms/1e3)
	case ms < 99.5e3:
		s = fmt.Sprintf("%.0fs", ms/1e3)
	case ms < 99.5*60e3:
		s = fmt.Sprintf("%.0fm", ms/60e3)
	case ms < 99.5*3600e3:
		s = fmt.Sprintf("%.0fh", ms/3600e3)
	default:
		s = ">99h"
	}
	return sign + s
}

// fmtBytes prints a byte count in powers of 1024 ("512 B", "1.5 MiB").
func fmtBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortID abbreviates a hex ID that is still a string (one typed, or a
// cluster server ID) as seed's Short does a typed one.
func shortID(s string) string {
	if len(s) > seed.ShortLen {
		return s[:seed.ShortLen]
	}
	return s
}
