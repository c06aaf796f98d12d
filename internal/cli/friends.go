package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

func newFriendsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "friends",
		Short: "List your friends and their devices; block, unblock or remove one",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			fs, err := c.Friends(ctx)
			if err != nil {
				return agentError(err)
			}
			return g.emit(fs, func(w io.Writer) {
				if len(fs) == 0 {
					fmt.Fprintln(w, "No friends yet: pair in person with \"kith pair show\" and \"kith pair scan\".")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USER\tNAME\tSTATUS\tCHECK CODE\tDEVICES")
				for _, f := range fs {
					online := 0
					for _, d := range f.Devices {
						if d.Online {
							online++
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d (%d online)\n", f.UserID, f.Name, f.Status, f.SAS, len(f.Devices), online)
				}
				tw.Flush()
			})
		},
	}
	for _, action := range []struct {
		name  control.FriendAction
		short string
	}{
		{control.FriendBlock, "Block USER: their packets are dropped and nothing of theirs is stored"},
		{control.FriendUnblock, "Unblock USER"},
		{control.FriendRemove, "Forget USER and their devices (pair again to be friends)"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   string(action.name) + " USER",
			Short: action.short,
			Args:  exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, ctx, err := g.agent(cmd)
				if err != nil {
					return err
				}
				res, err := c.FriendAction(ctx, action.name, args[0])
				if err != nil {
					return agentError(err)
				}
				return g.emit(res, func(w io.Writer) {
					fmt.Fprintf(w, "%s: %s\n", res.UserID, res.Status)
				})
			},
		})
	}
	return cmd
}
