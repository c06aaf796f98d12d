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
// (a mistyped seed phrase, an unknown flag, a tampered invite). Errors go to
// stderr as one line "kith: …" that says what is wrong and what to do.
//
// # Hints
//
// The libraries' errors say only what is wrong. What to do about it is the
// command line's to say, in terms of its own commands, flags and
// environment: a table in hint.go, keyed by the libraries' sentinel errors
// and error types, adds each hint right after the text of its error.
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
	"strings"

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
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	msg := strings.ReplaceAll(withHints(err), "\n", " ")
	fmt.Fprintf(env.Stderr, "kith: %s\n", msg)
	var ue usageError
	// cobra reports unknown commands and subcommands with plain errors.
	if errors.As(err, &ue) || strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown shorthand flag") {
		return ExitUsage
	}
	return ExitFailure
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
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return badInputf("%v (see %q)", err, cmd.CommandPath()+" --help")
	})
	root.AddCommand(
		newInitCmd(g),
		newRestoreCmd(g),
		newIDCmd(g),
		newKeysCmd(g),
		newVersionCmd(g),
	)
	addAgentCommands(root, g)
	return root
}

// exactArgs is cobra.ExactArgs with an exit-2 error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return badInputf("%s takes %d argument(s), got %d (see %q)", cmd.CommandPath(), n, len(args), cmd.CommandPath()+" --help")
		}
		return nil
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
