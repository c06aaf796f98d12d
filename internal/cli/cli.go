// Package cli implements kith's command-line interface, the contract of
// DESIGN §9.
//
// # Shape
//
// [Run] builds a cobra command tree, one file per subcommand, and executes it
// against an [Env] that carries the standard streams and the environment, so
// that tests can drive the whole CLI in process. Every command prints text by
// default and one JSON document on stdout with --json.
//
// # Exit status
//
// 0 on success, 1 when the operation failed, 2 for bad usage or bad input
// (a mistyped seed phrase, an unknown flag or command, a tampered invite, a
// folder given for a file). An error goes to stderr as one line "kith: …"
// that says what is wrong, then "kith: hint: …" lines that say what to do,
// as age prints them; with --json it is one JSON object {error, kind, hint}
// on stderr instead.
//
// # Hints
//
// The libraries' errors say only what is wrong. What to do about it is the
// command line's to say, in terms of its own commands, flags and
// environment: a table in hint.go, keyed by the libraries' sentinel errors
// and error types, gives the hints for the errors in a tree, and a command
// adds its own with withHint. The libraries' package prefixes ("store: ")
// and Go's parser and socket details are kept off the screen.
//
// # Terminals
//
// On a terminal, the seed phrase is read across lines with echo off until
// it is whole, new passphrases are asked twice, a current one up to three
// times, and destructive commands ask for confirmation (--yes skips it).
// Without a terminal nothing is asked, so scripts behave as before.
//
// # Secrets
//
// The seed phrase is read from standard input, the BIP39 passphrase from
// KITH_SEED_PASSPHRASE or a prompt (--seed-passphrase), the lock passphrase
// from KITH_PASSPHRASE or a prompt. None of them is ever taken from argv.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/kith-project/kith/internal/control"
	"github.com/spf13/cobra"
)

// Env is what a command may touch of its process: the standard streams and
// the environment. OSEnv returns the real ones.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// IsTerminal reports whether f (Stdin or Stderr) is an interactive
	// terminal, where prompts may be shown.
	IsTerminal func(f any) bool
}

// OSEnv returns the process's real streams and environment.
func OSEnv() Env {
	return Env{
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		Getenv:     os.Getenv,
		IsTerminal: isTerminal,
	}
}

// Exit statuses of DESIGN §9.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// usageError marks bad usage or bad input: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// badInput wraps err so that the command exits with status 2.
func badInput(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// badInputf formats a bad-input error.
func badInputf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// globals are the flags every command takes.
type globals struct {
	home string
	json bool
	env  Env
}

// Run executes the kith command line args and returns the exit status.
func Run(args []string, env Env) int {
	g := &globals{env: env}
	root := newRoot(g)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	msg, hs := explain(err)
	if g.json || jsonFlag(args) {
		kind := control.KindFailed
		var ce *control.Error
		switch {
		case code == ExitUsage:
			kind = control.KindBadInput
		case errors.As(err, &ce) && ce.Kind != "":
			kind = ce.Kind // the agent's, such as not_found
		}
		enc := json.NewEncoder(env.Stderr)
		enc.Encode(struct {
			Error string `json:"error"`
			Kind  string `json:"kind"`
			Hint  string `json:"hint"`
		}{msg, kind, strings.Join(hs, "; ")})
		return code
	}
	fmt.Fprintf(env.Stderr, "kith: %s\n", msg)
	for _, h := range hs {
		fmt.Fprintf(env.Stderr, "kith: hint: %s\n", h)
	}
	return code
}

// exitCode is the exit status for err: 2 for bad usage or bad input, 1
// for the rest.
func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue), errors.Is(err, syscall.EISDIR):
		return ExitUsage
	}
	// cobra reports some bad usage with plain errors.
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "required flag"} {
		if strings.HasPrefix(msg, p) {
			return ExitUsage
		}
	}
	return ExitFailure
}

// jsonFlag reports whether args ask for JSON, for errors that come before
// the flags are parsed.
func jsonFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--json" || a == "--json=true" {
			return true
		}
	}
	return false
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "kith",
		Short: "kith: your devices and the friends you met in person, talking directly",
		Long: `kith is a personal cluster: the devices you own and the friends you have met in
person, talking directly, with no server, account or company in between.

Every key comes from one seed phrase. Start with "kith init" on your first
device, or "kith restore --device N" to bring back a device from the phrase.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Bare "kith" prints help rather than failing.
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.PersistentFlags().StringVar(&g.home, "home", "", "this device's state folder (default $KITH_HOME, else $XDG_DATA_HOME/kith)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print one JSON document on stdout instead of text")
	root.Args = noArgs
	root.Version = buildVersion()
	root.SetVersionTemplate("kith {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.SetHelpCommand(newHelpCmd(root))
	root.AddCommand(
		newInitCmd(g),
		newRestoreCmd(g),
		newIDCmd(g),
		newKeysCmd(g),
		newVersionCmd(g),
		newRuleCmd(g),
	)
	addAgentCommands(root, g)
	root.SetIn(g.env.Stdin)
	root.SetOut(g.env.Stdout)
	root.SetErr(g.env.Stderr)
	// After SetOut: the completion commands keep the writer they see here.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			// "kith completion tcsh" is an unknown shell, not help.
			c.Args = noArgs
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
	boundInviteTTL(root)
	return root
}

// exactArgs is cobra.ExactArgs with an exit-2 error. On a command with
// subcommands, an argument is an unknown subcommand.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if cmd.HasSubCommands() && len(args) > 0 {
			return unknownCommand(cmd, args[0])
		}
		if len(args) != n {
			what := fmt.Sprintf("%d arguments", n)
			switch n {
			case 0:
				what = "no arguments"
			case 1:
				what = "one argument"
			}
			return badInput(withHint(fmt.Errorf("%s takes %s, got %d", cmd.CommandPath(), what, len(args)), fmt.Sprintf("see %q", cmd.CommandPath()+" --help")))
		}
		return nil
	}
}

var noArgs = exactArgs(0)

// unknownCommand is the error for a subcommand name of cmd that does not
// exist, with the names it may have meant on their own hint lines.
func unknownCommand(cmd *cobra.Command, name string) error {
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	var hs []string
	for _, s := range cmd.SuggestionsFor(name) {
		hs = append(hs, fmt.Sprintf("did you mean %q?", cmd.CommandPath()+" "+s))
	}
	hs = append(hs, fmt.Sprintf("see %q for the commands", cmd.CommandPath()+" --help"))
	return badInput(withHint(fmt.Errorf("unknown command %q for %q", name, cmd.CommandPath()), hs...))
}

// flagError rewords pflag's errors, which quote Go's parsers
// ("strconv.ParseUint: parsing …"), in terms of the flag.
func flagError(cmd *cobra.Command, err error) error {
	help := fmt.Sprintf("see %q", cmd.CommandPath()+" --help")
	m := invalidFlag.FindStringSubmatch(err.Error())
	if m == nil {
		return badInput(withHint(err, help))
	}
	value, name := m[1], m[2]
	want := "a valid value"
	// pflag names the flag "--name" or "-n, --name".
	names := strings.Split(name, ", ")
	if f := cmd.Flags().Lookup(strings.TrimLeft(names[len(names)-1], "-")); f != nil {
		name = "--" + f.Name
		switch t := f.Value.Type(); {
		case strings.HasPrefix(t, "uint"):
			want = "a whole number, 0 or more"
		case strings.HasPrefix(t, "int"):
			want = "a whole number"
		case t == "duration":
			want = "a duration such as 90s, 10m or 1h"
		case t == "bool":
			want = "true or false"
		}
	}
	return badInput(withHint(fmt.Errorf("%s %q is not %s", name, value, want), help))
}

var invalidFlag = regexp.MustCompile(`^invalid argument "(.*)" for "(.*)" flag`)

// newHelpCmd is "kith help [COMMAND]", which fails on a command that does
// not exist rather than printing a topic it does not have.
func newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				parent := root
				if c != nil {
					parent = c
				}
				name := strings.Join(args, " ")
				if len(rest) > 0 {
					name = rest[0]
				}
				return unknownCommand(parent, name)
			}
			c.InitDefaultHelpFlag()
			return c.Help()
		},
	}
}

// emit prints v as JSON when --json is set, and text otherwise.
func (g *globals) emit(v any, text func(w io.Writer)) error {
	if g.json {
		enc := json.NewEncoder(g.env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		return nil
	}
	text(g.env.Stdout)
	return nil
}
