package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/kith-project/kith/consensus"
	"github.com/spf13/cobra"
)

// ruleHint is the hint under every refused rule.
const ruleHint = `see "kith rule presets" for rules that work, and docs/conversations.md for what a rule may use`

// stateHint is the hint under a state file that does not parse.
const stateHint = `a state is {"members": [...], "started_at": T, "now": T, "messages": [{"by", "kind", "body", "at": T}]}, times in RFC 3339`

func newRuleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rule",
		Short: "Try a conversation rule offline: check it, evaluate it over a state, list the presets",
		Long: `A conversation's rule is an expression that says when the conversation is
decided, such as quorum(2/3) && majority("yes"). These commands need no agent
and no home folder, so that you can try a rule before starting a conversation
with it.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newRuleCheckCmd(g), newRuleEvalCmd(g), newRulePresetsCmd(g))
	return cmd
}

// ruleSource is the rule a command was given: EXPR or --preset NAME.
func ruleSource(cmd *cobra.Command, args []string, preset string) (string, error) {
	help := fmt.Sprintf("see %q", cmd.CommandPath()+" --help")
	switch {
	case len(args) > 1:
		return "", badInput(withHint(fmt.Errorf("%s takes one rule, got %d arguments", cmd.CommandPath(), len(args)), `quote the rule: 'quorum(2/3) && majority("yes")'`))
	case len(args) == 1 && preset != "":
		return "", badInput(withHint(errors.New("give a rule or --preset, not both"), help))
	case len(args) == 1:
		return args[0], nil
	case preset != "":
		src, ok := consensus.Preset(preset)
		if !ok {
			return "", badInput(withHint(fmt.Errorf("no preset %q", sanitize(preset)), "the presets are "+strings.Join(presetNames(), ", ")))
		}
		return src, nil
	}
	return "", badInput(withHint(errors.New("give a rule, or --preset NAME"), help))
}

func presetNames() []string {
	var names []string
	for _, p := range consensus.Presets() {
		names = append(names, p.Name)
	}
	return names
}

// checkResult is "kith rule check".
type checkResult struct {
	OK          bool    `json:"ok"`
	Error       *string `json:"error"`            // null when ok
	Line        int     `json:"line,omitempty"`   // of the refusal, 1-based
	Column      int     `json:"column,omitempty"` // of the refusal, 1-based, in characters
	Rule        string  `json:"rule"`
	UsesElapsed bool    `json:"uses_elapsed"` // re-evaluated on a timer, not only per message
}

// refusedError is a refused rule: exit 2, with the hint.
func refusedError(e *consensus.Error) error {
	return badInput(withHint(fmt.Errorf("rule refused: %s", sanitize(e.Error())), ruleHint))
}

func newRuleCheckCmd(g *globals) *cobra.Command {
	var preset string
	cmd := &cobra.Command{
		Use:   "check EXPR | --preset NAME",
		Short: "Check that a rule compiles and is pure and bounded",
		Long: `check compiles a rule as a conversation would and says whether it is
accepted. A refused rule prints where and why (line and column, 1-based) and
exits with status 2; with --json the document is still printed on stdout.

  kith rule check 'quorum(2/3) && majority("yes")'
  kith rule check --preset consent`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := ruleSource(cmd, args, preset)
			if err != nil {
				return err
			}
			res := checkResult{Rule: src}
			r, err := consensus.Compile(src)
			var refused *consensus.Error
			switch {
			case errors.As(err, &refused):
				msg := refused.Error()
				res.Error, res.Line, res.Column = &msg, refused.Line, refused.Column
			case err != nil:
				return err
			default:
				res.OK, res.UsesElapsed = true, r.UsesElapsed()
			}
			if err := g.emit(res, func(w io.Writer) { printCheck(w, src, res, refused) }); err != nil {
				return err
			}
			if refused != nil {
				return refusedError(refused)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "", "check the preset NAME (see \"kith rule presets\")")
	return cmd
}

// printCheck shows the rule's text with a caret under a refusal.
func printCheck(w io.Writer, src string, res checkResult, e *consensus.Error) {
	if e == nil {
		fmt.Fprintf(w, "ok: %s\n", sanitize(src))
		if res.UsesElapsed {
			fmt.Fprintln(w, "it reads elapsed: a conversation re-evaluates it on a timer as well as after each message")
		}
		return
	}
	lines := strings.Split(src, "\n")
	if e.Line >= 1 && e.Line <= len(lines) {
		line := []rune(sanitize(strings.ReplaceAll(lines[e.Line-1], "\t", " ")))
		fmt.Fprintf(w, "  %s\n", string(line))
		fmt.Fprintf(w, "  %s^\n", strings.Repeat(" ", min(e.Column-1, len(line))))
	}
	fmt.Fprintf(w, "refused: %s\n", sanitize(e.Error()))
}

// evalResult is "kith rule eval".
type evalResult struct {
	Result  bool           `json:"result"`  // the rule's value over the state
	Outcome string         `json:"outcome"` // the choice an outcome would carry: the highest tally, ties by name; "" when nobody voted
	Tally   map[string]int `json:"tally"`   // members whose latest vote is each choice
	Voted   int            `json:"voted"`
	Elapsed float64        `json:"elapsed"` // seconds from started_at to now
	Rule    string         `json:"rule"`
}

func newRuleEvalCmd(g *globals) *cobra.Command {
	var preset, statePath string
	cmd := &cobra.Command{
		Use:   "eval EXPR --state FILE | --preset NAME --state FILE",
		Short: "Evaluate a rule over a conversation state, as a conversation would",
		Long: `eval evaluates a rule over a conversation's state read from FILE ("-" for
standard input), exactly as a conversation's devices do after each message:

  {"members": ["alice", "bob", "carol"],
   "started_at": "2026-12-01T10:00:00Z", "now": "2026-12-01T11:00:00Z",
   "messages": [{"by": "alice", "kind": "vote", "body": "yes", "at": "2026-12-01T10:05:00Z"}]}

A message of kind vote or rsvp by a member is a vote for its body, and a
member's latest vote counts. result is the rule's value; outcome is the choice
a decided conversation would carry.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := ruleSource(cmd, args, preset)
			if err != nil {
				return err
			}
			if statePath == "" {
				return badInput(withHint(errors.New("--state FILE is required"), stateHint))
			}
			r, err := consensus.Compile(src)
			var refused *consensus.Error
			if errors.As(err, &refused) {
				return refusedError(refused)
			} else if err != nil {
				return err
			}
			b, err := readState(g, statePath)
			if err != nil {
				return err
			}
			s, err := consensus.ParseState(b)
			if err != nil {
				return badInput(withHint(fmt.Errorf("reading the state %s: %w", statePath, err), stateHint))
			}
			ok, err := r.EvalState(s)
			if err != nil {
				return err
			}
			t := s.Tally()
			res := evalResult{Result: ok, Outcome: t.Result(), Tally: t.Counts(), Voted: t.Voted(), Elapsed: s.Elapsed().Seconds(), Rule: src}
			return g.emit(res, func(w io.Writer) { printEval(w, res) })
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "", "evaluate the preset NAME (see \"kith rule presets\")")
	cmd.Flags().StringVar(&statePath, "state", "", `the conversation state, a JSON file ("-" for standard input)`)
	return cmd
}

// readState reads a state file, refusing one larger than a state may be.
func readState(g *globals, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = g.env.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, badInput(withHint(fmt.Errorf("reading the state: %w", err), stateHint))
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, consensus.MaxStateBytes+1))
	if err != nil {
		return nil, badInput(fmt.Errorf("reading the state %s: %w", path, err))
	}
	return b, nil
}

func printEval(w io.Writer, res evalResult) {
	fmt.Fprintf(w, "%v\n", res.Result)
	choices := make([]string, 0, len(res.Tally))
	for c := range res.Tally {
		choices = append(choices, c)
	}
	slices.Sort(choices)
	var parts []string
	for _, c := range choices {
		parts = append(parts, fmt.Sprintf("%s %d", sanitize(c), res.Tally[c]))
	}
	tally := "nobody voted"
	if len(parts) > 0 {
		tally = strings.Join(parts, ", ")
	}
	fmt.Fprintf(w, "tally: %s (%d voted, %.0f s elapsed)\n", tally, res.Voted, res.Elapsed)
	if res.Result {
		fmt.Fprintf(w, "decided: the outcome would be %q\n", sanitize(res.Outcome))
	} else {
		fmt.Fprintln(w, "not decided")
	}
}

func newRulePresetsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "presets",
		Short: "List the named rules that --preset accepts",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps := consensus.Presets()
			return g.emit(ps, func(w io.Writer) {
				for _, p := range ps {
					fmt.Fprintf(w, "%s\n  %s\n  %s\n", p.Name, p.Rule, p.About)
				}
			})
		},
	}
}
