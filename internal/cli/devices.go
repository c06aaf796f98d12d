package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/seed"
	"github.com/spf13/cobra"
)

func newDevicesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List your own devices, online or not, with their roles; revoke a lost one",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			ds, err := c.Devices(ctx)
			if err != nil {
				return agentError(err)
			}
			return g.emit(ds, func(w io.Writer) { printDevices(w, ds) })
		},
	}
	var askSeed bool
	revoke := &cobra.Command{
		Use:   "revoke I",
		Short: "Revoke device I for good (phrase on stdin); recovers the cluster if the loss took quorum",
		Long: `revoke signs, with the user key derived from the seed phrase on standard
input, a statement that device I no longer belongs to you, and hands it to the
agent, which applies it and replicates it to your other devices. A revoked
device is refused by all of them; its index is dead for good (restore a new
device with a new index).

If the lost devices took the cluster's quorum with them, the revocation also
recovers the cluster onto the devices still here, without losing anything
committed: the phrase is the authority for it.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil || i > seed.MaxDeviceIndex {
				return badInputf("device index %q: use 0 to %d, as \"kith devices\" shows", clip(args[0], 20), seed.MaxDeviceIndex)
			}
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			phrase, err := g.parsePhrase()
			if err != nil {
				return err
			}
			passphrase, err := g.seedPassphrase(askSeed, false)
			if err != nil {
				return err
			}
			s := phrase.Seed(passphrase)
			defer clear(s)
			user, err := seed.DeriveUser(s)
			if err != nil {
				return fmt.Errorf("deriving the user key: %w", err)
			}
			dk, _, err := seed.DeriveDevice(s, uint32(i))
			if err != nil {
				return fmt.Errorf("deriving device %d: %w", i, err)
			}
			rev, err := user.Revoke(seed.Revocation{Device: dk.Public(), Index: uint32(i)})
			if err != nil {
				return err
			}
			res, err := c.DevicesRevoke(ctx, control.RevokeRequest{Revocation: rev.Marshal()})
			if err != nil {
				return agentError(err)
			}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "device %d revoked\n", res.DeviceIndex)
				if len(res.Recovered) > 0 {
					short := make([]string, len(res.Recovered))
					for k, id := range res.Recovered {
						short[k] = shortID(id)
					}
					fmt.Fprintf(w, "the cluster had lost quorum: recovered onto %s\n", strings.Join(short, ", "))
				}
			})
		},
	}
	revoke.Flags().BoolVar(&askSeed, "seed-passphrase", false, "ask for the BIP39 passphrase (the extra word) on the terminal")
	cmd.AddCommand(revoke)
	return cmd
}

// printDevices prints the devices table within 80 columns: the index (at
// most 10 digits), 12 + 10 + 9 + 21 + 7, and the gaps.
func printDevices(w io.Writer, ds []control.OwnDevice) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tDEVICE\tNAME\tROLES\tADDRESS\tSTATE")
	for _, d := range ds {
		state := "offline"
		switch {
		case d.Revoked:
			state = "revoked"
		case d.Self:
			state = "this"
		case d.Online:
			state = "online"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", d.DeviceIndex, d.DeviceID.Short(), clip(orDash(d.Name), 10), clip(orDash(strings.Join(d.Roles, ",")), 9), clip(orDash(d.Addr), 21), state)
	}
	tw.Flush()
}
