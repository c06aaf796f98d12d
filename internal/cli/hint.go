package cli

import (
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/home"
	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/internal/store"
)

// A hint says what to do about an error, in the command line's words.
// Libraries say only what is wrong; the command line knows its own
// commands, flags and environment, and prints each hint on its own line
// after the error, as "kith: hint: …".
type hint struct {
	// match returns the error in err's tree that this hint is about, or
	// nil.
	match func(err error) error
	// text is the hint for that error.
	text func(err error) string
}

// hints is every hint, keyed by sentinel error or error type.
var hints = []hint{
	{sentinel(keystore.ErrNotFound), fixed(`run "kith init" for a new identity, or "kith restore --device I" to restore one`)},
	{sentinel(keystore.ErrLocked), fixed("set KITH_PASSPHRASE, or run on a terminal to be asked")},
	{sentinel(keystore.ErrLocked), fixed(forgotHint)},
	{ofType[wrongEnvPassphrase], fixed("check KITH_PASSPHRASE, or unset it to be asked on the terminal")},
	{sentinel(keystore.ErrWrongPassphrase), fixed(forgotHint)},
	{sentinel(keystore.ErrCorrupt), fixed(`recreate it from the seed phrase with "kith restore --force --device I"`)},
	{sentinel(keystore.ErrUnsupportedVersion), fixed("upgrade kith")},
	{sentinel(store.ErrInUse), fixed(`is "kith run" running? stop it, or use another --home`)},
	{sentinel(store.ErrNewerSchema), fixed("upgrade kith")},
	{sentinel(store.ErrNotDatabase), fixed("move it away to start afresh")},
	{sentinel(store.ErrDamaged), fixed("move it away to start afresh")},
	{ofType[*home.InUseError], fixed(`is "kith run" running? stop it, or use another --home`)},
	{ofType[*home.DefaultError], fixed("set --home or " + home.EnvHome)},
	{ofType[*home.NotFolderError], fixed("choose another --home")},
	{sentinel(home.ErrNotYours), fixed("use a home folder of your own that only you may write to (chmod 700), or choose another --home")},
	{sentinel(home.ErrLink), fixed("someone may have planted it: remove the link, then restore the device from its seed phrase (\"kith restore --force --device I\")")},
	{sentinel(store.ErrLink), fixed("someone may have planted it: remove the link and move the real database back, or start afresh with \"kith restore --force --device I\"")},
	{ofType[*device.KeysError], fixed(`restore this device from its seed phrase: "kith restore --force --device I"`)},
	{ofType[*control.SocketPathError], fixed("use a shorter --home")},
	{ofType[*control.NoAgentError], func(err error) string {
		h := err.(*control.NoAgentError).Home
		return `start it with "kith --home ` + h + ` run" (it stays in the foreground; use another terminal)`
	}},
	{is(syscall.EADDRINUSE), fixed("another program, or another kith run, uses that port: choose another with --listen HOST:PORT")},
	{ofType[*hinted], func(err error) string { return strings.Join(err.(*hinted).hints, "\n") }},
}

// hinted is an error with hints the command adds itself.
type hinted struct {
	err   error
	hints []string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

// withHint attaches hints, each printed on its own line, to err.
func withHint(err error, hints ...string) error {
	if err == nil {
		return nil
	}
	return &hinted{err, hints}
}

// explain returns what the user reads for err: the message, on one line
// and without the libraries' package prefixes, and its hints.
func explain(err error) (msg string, hs []string) {
	msg = plain(strings.ReplaceAll(err.Error(), "\n", "; "))
	msg = once(err, msg)
	seen := map[string]bool{}
	for _, h := range hints {
		e := h.match(err)
		if e == nil {
			continue
		}
		for _, line := range strings.Split(h.text(e), "\n") {
			if line != "" && !seen[line] {
				seen[line] = true
				hs = append(hs, line)
			}
		}
	}
	return msg, hs
}

// pkgPrefix matches the package prefixes that libraries put on their
// errors ("store: ", "control: "), which mean nothing to a user.
var pkgPrefix = regexp.MustCompile(`(^|: |; )(agent|control|device|home|keystore|launch|pairing|roster|seed|store|transport|presence|cluster|consensus): `)

// plain removes package prefixes and the doubled separators they leave.
func plain(msg string) string {
	for {
		next := pkgPrefix.ReplaceAllString(msg, "$1")
		if next == msg {
			return msg
		}
		msg = next
	}
}

// once shortens a message that names a socket's address more than once, as
// wrapped net errors do ("opening the UDP port A: listening on A: listen udp
// A: bind: address already in use"), to its first part and the cause.
func once(err error, msg string) string {
	var op *net.OpError
	if !errors.As(err, &op) || op.Addr == nil {
		return msg
	}
	a := op.Addr.String()
	if strings.Count(msg, a) < 2 {
		return msg
	}
	cause := op.Err
	var se *os.SyscallError
	if errors.As(cause, &se) {
		cause = se.Err
	}
	return msg[:strings.Index(msg, a)+len(a)] + ": " + cause.Error()
}

// is matches an error in a tree that [errors.Is] target, such as an errno.
func is(target error) func(error) error {
	return func(err error) error {
		if errors.Is(err, target) {
			return err
		}
		return nil
	}
}

// agentError is the command's error for an error from the agent: bad-input
// answers exit with status 2, anything else with 1. A socket that cannot
// be reached is said in words, without the HTTP and dial details.
func agentError(err error) error {
	if control.BadInput(err) {
		return badInput(err)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		cause := op.Err
		var se *os.SyscallError
		if errors.As(cause, &se) {
			cause = se.Err
		}
		if errors.Is(cause, syscall.ENOTDIR) {
			return withHint(errors.New("cannot reach the agent: the home folder is not a folder"), "choose another --home")
		}
		if errors.Is(cause, syscall.EACCES) {
			return withHint(errors.New("cannot reach the agent: permission denied on its socket"), "run as the user who runs the agent")
		}
		return withHint(errors.New("cannot reach the agent: "+cause.Error()), `is "kith run" running for this --home?`)
	}
	return err
}

// sentinel matches the error in a tree that is target or says it is (with
// an Is method), such as a typed error standing for a sentinel.
func sentinel(target error) func(error) error {
	return func(err error) error {
		return find(err, func(e error) bool {
			if e == target {
				return true
			}
			is, ok := e.(interface{ Is(error) bool })
			return ok && is.Is(target)
		})
	}
}

// ofType matches the first error of type E in a tree.
func ofType[E error](err error) error {
	return find(err, func(e error) bool {
		_, ok := e.(E)
		return ok
	})
}

// find returns the first error in err's tree, depth first as [errors.Is]
// walks it, for which ok holds.
func find(err error, ok func(error) bool) error {
	if err == nil {
		return nil
	}
	if ok(err) {
		return err
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return find(u.Unwrap(), ok)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if f := find(e, ok); f != nil {
				return f
			}
		}
	}
	return nil
}

func fixed(s string) func(error) string { return func(error) string { return s } }
