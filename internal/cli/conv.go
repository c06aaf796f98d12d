package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/seed"
	"github.com/spf13/cobra"
)

func newConvCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conv",
		Short: "Conversations with your friends, decided by a rule",
		Long: `conv starts, lists, shows and takes part in conversations. A conversation has
a topic, members, a pattern and a rule:

  pattern        kinds                                  vote choices
  chat           text                                   (no rule)
  discussion     text, vote                             yes, no, abstain
  debate         position, argument, rebuttal, vote     yes, no, abstain
  announcement   text (the creator only), ack           -
  invitation     text, rsvp                             yes, no, maybe

The rule is an expression over the votes, such as
  quorum(2/3) && majority("yes")
and the first device to find it true publishes the signed outcome, which
every member's devices check and share. Try a rule first with
"kith rule check EXPR".

Every member's devices receive every message, directly or through a friend
both of you have; a conversation ID may be given by its first characters.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newConvNewCmd(g), newConvListCmd(g), newConvShowCmd(g), newConvPostCmd(g), newConvVoteCmd(g))
	return cmd
}

func newConvNewCmd(g *globals) *cobra.Command {
	var topic, pattern, with, rule, preset string
	cmd := &cobra.Command{
		Use:   "new --topic T --pattern P --with USER[,USER…] [--rule EXPR | --preset NAME]",
		Short: "Start a conversation with friends",
		Long: `new starts a conversation and prints its ID. USER is a friend's name, the start
of their user ID, or a full user ID; every member must be your friend (they
reach each other through you). A chat takes no rule; the other patterns need
--rule or --preset (majority, supermajority, unanimity, consent, …).`,
		Example: `  kith conv new --topic "Adopt the plan?" --pattern debate --with bob,carol --rule 'quorum(2/3) && majority("yes")'
  kith conv new --topic "Dinner Friday" --pattern invitation --with bob --rule 'tally("yes") >= 2'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(topic) == "" {
				return badInput(withHint(errors.New("--topic is required"), `for example --topic "Dinner on Friday?"`))
			}
			if rule != "" && preset != "" {
				return badInput(errors.New("--rule and --preset are exclusive: give one"))
			}
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			var users []string
			for _, u := range strings.Split(with, ",") {
				if strings.TrimSpace(u) == "" {
					continue
				}
				id, _, err := resolveUser(ctx, c, u)
				if err != nil {
					return err
				}
				if !slices.Contains(users, id) {
					users = append(users, id)
				}
			}
			if len(users) == 0 {
				return badInput(withHint(errors.New("--with names nobody"), "give the members as --with USER[,USER…]: friends' names or the start of their user IDs"))
			}
			res, err := c.ConvNew(ctx, control.ConvNewRequest{Topic: topic, Pattern: pattern, With: users, Rule: rule, Preset: preset})
			if err != nil {
				return convError(err)
			}
			return g.emit(res, func(w io.Writer) { fmt.Fprintln(w, res.ConversationID) })
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "what the conversation is about")
	cmd.Flags().StringVar(&pattern, "pattern", "", "chat, discussion, debate, announcement or invitation")
	cmd.Flags().StringVar(&with, "with", "", "the other members: friends' names or user IDs, comma-separated")
	cmd.Flags().StringVar(&rule, "rule", "", "the rule that decides it, such as 'quorum(2/3) && majority(\"yes\")'")
	cmd.Flags().StringVar(&preset, "preset", "", "a named rule instead of --rule: majority, supermajority, unanimity, consent, …")
	return cmd
}

func newConvListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List your conversations",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			cs, err := c.ConvList(ctx)
			if err != nil {
				return convError(err)
			}
			if cs == nil {
				cs = []control.ConvSummary{}
			}
			return g.emit(cs, func(w io.Writer) {
				if len(cs) == 0 {
					fmt.Fprintln(w, `No conversations yet: start one with "kith conv new".`)
					return
				}
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPATTERN\tSTATUS\tMEMBERS\tTOPIC")
				for _, s := range cs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", shortID(s.ConversationID), clip(s.Pattern, 12), clip(s.Status, 8), len(s.Members), clip(s.Topic, 40))
				}
				tw.Flush()
			})
		},
	}
}

func newConvShowCmd(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "show ID [--follow]",
		Short: "Show a conversation as a thread, with the tally and the outcome",
		Long: `show prints the conversation: who said what, the latest votes counted against
the rule, and the outcome once it is decided. With --follow it then prints
new messages and the outcome as they arrive (JSON lines with --json: one
{"type":"message","message":{…}} per message and {"type":"outcome",
"outcome":{…}} at the end), and returns once the outcome is in, or on
Ctrl-C.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			v, err := g.convShow(ctx, c, args[0]) // archive_show.go: a progress bar on a terminal
			if err != nil {
				return convError(err)
			}
			if !follow {
				return g.emit(v, func(w io.Writer) { printThread(w, v, time.Now()) })
			}
			return g.follow(ctx, c, v)
		},
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "keep printing new messages and the outcome as they arrive")
	return cmd
}

// follow prints the thread, then each new message and the outcome, and
// returns once the outcome is printed.
func (g *globals) follow(ctx context.Context, c *control.Client, v control.ConvView) error {
	w := g.env.Stdout
	seen := map[string]bool{}
	if !g.json {
		printThread(w, v, time.Now())
		for _, m := range v.Messages {
			seen[m.ID] = true
		}
		if v.Outcome != nil {
			return nil
		}
		fmt.Fprintln(w, "… following; Ctrl-C to stop")
	}
	err := c.ConvFollow(ctx, v.ConversationID, func(ev control.ConvEvent) error {
		if g.json {
			if err := writeJSONLine(w, ev); err != nil {
				return err
			}
			if ev.Type == control.ConvEventOutcome {
				return control.ErrStopFollow
			}
			return nil
		}
		switch {
		case ev.Message != nil && !seen[ev.Message.ID]:
			seen[ev.Message.ID] = true
			printMessage(w, *ev.Message, v.Names, v.Self)
		case ev.Outcome != nil:
			printOutcome(w, *ev.Outcome, v.Names, v.Self)
			return control.ErrStopFollow
		}
		return nil
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		return convError(err)
	}
	return nil
}

func newConvPostCmd(g *globals) *cobra.Command {
	var kind string
	cmd := &cobra.Command{
		Use:   "post ID TEXT [--kind K]",
		Short: "Post a message to a conversation",
		Long: `post sends TEXT to every member of conversation ID. --kind is one of the
pattern's kinds (kith conv --help lists them); the default is the pattern's
first: text, or position in a debate.`,
		Example: `  kith conv post 3f2a "We should, because it is cheaper" --kind position
  kith conv post 3f2a "Noted" --kind ack`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.ConvPost(ctx, control.ConvPostRequest{ConversationID: args[0], Kind: kind, Body: args[1]})
			if err != nil {
				return convError(err)
			}
			return g.emit(res, func(w io.Writer) { fmt.Fprintln(w, res.MessageID) })
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "the message's kind (default: the pattern's first)")
	return cmd
}

func newConvVoteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "vote ID CHOICE",
		Short: "Vote in a conversation (an RSVP in an invitation)",
		Long: `vote casts CHOICE (yes, no or abstain; yes, no or maybe in an invitation).
Your latest vote counts; earlier ones stay in the history.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ctx, err := g.agent(cmd)
			if err != nil {
				return err
			}
			res, err := c.ConvVote(ctx, control.ConvVoteRequest{ConversationID: args[0], Choice: args[1]})
			if err != nil {
				return convError(err)
			}
			return g.emit(res, func(w io.Writer) { fmt.Fprintln(w, res.MessageID) })
		},
	}
}

// Reasons the agent gives for refusing a conversation request, in
// control.Error.Reason.
const (
	convReasonRule      = "rule"
	convReasonPattern   = "pattern"
	convReasonKind      = "kind"
	convReasonNotFriend = "not_friend"
	convReasonDecided   = "decided"
	convReasonAmbiguous = "ambiguous"
)

// convError is agentError with hints for a refused conversation request.
func convError(err error) error {
	var ce *control.Error
	if errors.As(err, &ce) {
		switch ce.Reason {
		case convReasonRule:
			err = withHint(err, `try a rule first with "kith rule check EXPR"; a preset (--preset majority, supermajority, unanimity, consent) is ready-made`)
		case convReasonPattern:
			err = withHint(err, "patterns: chat, discussion, debate, announcement, invitation")
		case convReasonKind:
			err = withHint(err, `"kith conv show ID" lists the kinds and choices the conversation allows`)
		case convReasonNotFriend:
			err = withHint(err, "every member must be your friend: pair in person first (kith pair show, kith pair scan)")
		case convReasonDecided:
			err = withHint(err, `the outcome is final; "kith conv show ID" shows it`)
		case convReasonAmbiguous:
			err = withHint(err, `give more characters of the ID, as "kith conv list" shows them`)
		}
	}
	return agentError(err)
}

// printThread prints a conversation like a thread: the header, every
// message, the tally against the rule, and the outcome.
func printThread(w io.Writer, v control.ConvView, now time.Time) {
	fmt.Fprintf(w, "%s\n", sanitize(v.Topic))
	fmt.Fprintf(w, "  %s · %s · %s, started by %s %s\n", v.Pattern, v.Status, shortID(v.ConversationID), who(v.Creator, v.Names, v.Self), fmtAgo(v.CreatedAt, now))
	if v.Rule != "" {
		fmt.Fprintf(w, "  rule: %s\n", sanitize(v.Rule))
	}
	var ms []string
	for _, m := range v.Members {
		ms = append(ms, who(m, v.Names, v.Self))
	}
	fmt.Fprintf(w, "  members: %s\n", strings.Join(ms, ", "))
	fmt.Fprintln(w)
	if len(v.Messages) == 0 {
		fmt.Fprintln(w, "  (no messages yet)")
	}
	for _, m := range v.Messages {
		printMessage(w, m, v.Names, v.Self)
	}
	if len(v.Choices) > 0 {
		fmt.Fprintln(w)
		voted := 0
		for _, n := range v.Tally {
			voted += n
		}
		var parts []string
		for _, c := range v.Choices {
			parts = append(parts, fmt.Sprintf("%s %d", c, v.Tally[c]))
		}
		fmt.Fprintf(w, "tally: %s · %d of %d members voted\n", strings.Join(parts, ", "), voted, len(v.Members))
	}
	switch {
	case v.Outcome != nil:
		printOutcome(w, *v.Outcome, v.Names, v.Self)
	case v.RuleError != "":
		fmt.Fprintf(w, "rule %s: cannot be evaluated: %s\n", sanitize(v.Rule), sanitize(v.RuleError))
	case v.Rule != "":
		fmt.Fprintf(w, "rule %s: not met yet\n", sanitize(v.Rule))
	}
}

// printMessage prints one message of a thread: when, who, its kind, and
// its body, each line of it sanitized and indented.
func printMessage(w io.Writer, m control.ConvMessage, names map[string]string, self seed.UserPublic) {
	lines := strings.Split(m.Body, "\n")
	fmt.Fprintf(w, "  %s  %-12s %-9s %s\n", m.At.Local().Format("Jan _2 15:04"), clip(who(m.By, names, self), 12), clip(m.Kind, 9), sanitize(lines[0]))
	for _, l := range lines[1:] {
		fmt.Fprintf(w, "  %37s%s\n", "", sanitize(l))
	}
}

// printOutcome prints the decided result.
func printOutcome(w io.Writer, o control.ConvOutcome, names map[string]string, self seed.UserPublic) {
	var parts []string
	keys := make([]string, 0, len(o.Tally))
	for k := range o.Tally {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", sanitize(k), o.Tally[k]))
	}
	fmt.Fprintf(w, "outcome: %s (%s), decided by %s at %s; message set %s\n",
		orDash(sanitize(o.Result)), strings.Join(parts, ", "), who(o.DecidedBy, names, self), o.EvaluatedAt.Local().Format("Jan _2 15:04:05"), shortID(o.MessageSet))
}

// who names a user in a thread: "you", a known name, or a short ID.
func who(u seed.UserPublic, names map[string]string, self seed.UserPublic) string {
	if u.Equal(self) {
		return "you"
	}
	if n := sanitize(names[u.ID()]); n != "" {
		return n
	}
	return u.Short()
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
