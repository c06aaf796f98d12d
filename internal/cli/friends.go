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
			return g.emit(fs, func(w io.Writer) { printFriends(w, fs) })
		},
	}
	for _, action := range []struct {
		name  control.FriendAction
		short string
	}{
		{control.FriendBlock, "Block USER (a name, the start of an ID, or a full ID): their packets are dropped and nothing of theirs is stored"},
		{control.FriendUnblock, "Unblock USER"},
		{control.FriendRemove, "Forget USER and their devices (pair again to be friends)"},
	} {
		var yes bool
		sub := &cobra.Command{
			Use:   string(action.name) + " USER",
			Short: action.short,
			Long: action.short + `.

USER is a friend's name, the start of their user ID (the 12 characters
"kith friends" shows are enough), or a full user ID of 64 hexadecimal
characters, which is needed for someone you have never met.`,
			Args: exactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, ctx, err := g.agent(cmd)
				if err != nil {
					return err
				}
				user, known, err := resolveUser(ctx, c, args[0])
				if err != nil {
					return err
				}
				if !known && action.name == control.FriendBlock {
					fmt.Fprintf(g.env.Stderr, "kith: note: you have never paired with %s; they are blocked all the same, and \"kith friends\" lists them without a name\n", shortID(user))
				}
				if action.name == control.FriendRemove && !yes {
					if err := g.confirm(fmt.Sprintf("This forgets %s and their devices; to be friends again you must pair in person.", shortID(user)), "Remove them?"); err != nil {
						return err
					}
				}
				res, err := c.FriendAction(ctx, action.name, user)
				if err != nil {
					return agentError(err)
				}
				return g.emit(res, func(w io.Writer) {
					fmt.Fprintf(w, "%s: %s\n", res.UserID, res.Status)
				})
			},
		}
		if action.name == control.FriendRemove {
			sub.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation on a terminal")
		}
		cmd.AddCommand(sub)
	}
	return cmd
}

// printFriends prints the friends table, within 80 columns: 12 + 16 + 7 +
// 20 + 12, and the gaps.
func printFriends(w io.Writer, fs []control.FriendView) {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d (%d online)\n", f.UserID.Short(), clip(orDash(f.Name), 16), clip(string(f.Status), 7), clip(orDash(f.SAS), 20), len(f.Devices), online)
	}
	tw.Flush()
}
