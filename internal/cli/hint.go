package cli

import (
	"strings"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/device"
	"github.com/kith-project/kith/internal/home"
	"github.com/kith-project/kith/internal/keystore"
	"github.com/kith-project/kith/internal/store"
)

// A hint says what to do about an error, in the command line's words.
// Libraries say only what is wrong; the command line knows its own
// commands, flags and environment, and adds the hint to the one line it
// prints, right after the text of the error the hint is about.
type hint struct {
	// match returns the error in err's tree that this hint is about, or
	// nil.
	match func(err error) error
	// text is the hint for that error, with its leading separator.
	text func(err error) string
}

// hints is every hint, keyed by sentinel error or error type.
var hints = []hint{
	{sentinel(keystore.ErrNotFound), fixed(": run kith init or kith restore")},
	{sentinel(keystore.ErrLocked), fixed(": set KITH_PASSPHRASE or run on a terminal to be asked")},
	{sentinel(keystore.ErrWrongPassphrase), fixed(" (set KITH_PASSPHRASE or type it at the prompt)")},
	{sentinel(keystore.ErrCorrupt), fixed(` (recreate it from the seed phrase with "kith restore --force")`)},
	{sentinel(keystore.ErrUnsupportedVersion), fixed(": upgrade kith")},
	{sentinel(store.ErrInUse), fixed(` (is "kith run" running? stop it or use another --home)`)},
	{sentinel(store.ErrNewerSchema), fixed(": upgrade kith")},
	{sentinel(store.ErrNotDatabase), fixed(" (move it away to start afresh)")},
	{sentinel(store.ErrDamaged), fixed(" (move it away to start afresh)")},
	{ofType[*home.InUseError], fixed(` (is "kith run" running? stop it or use another --home)`)},
	{ofType[*home.DefaultError], fixed(" (set --home or " + home.EnvHome + ")")},
	{ofType[*home.NotFolderError], fixed(": choose another --home")},
	{ofType[*device.KeysError], fixed(": restore this device from its seed phrase")},
	{ofType[*control.SocketPathError], fixed(": use a shorter --home")},
	{ofType[*control.NoAgentError], func(err error) string {
		h := err.(*control.NoAgentError).Home
		return `: start it with "kith --home ` + h + ` run" (it stays in the foreground; use another terminal)`
	}},
}

// withHints returns err's text with the hints for the errors in its tree.
func withHints(err error) string {
	msg := err.Error()
	for _, h := range hints {
		e := h.match(err)
		if e == nil {
			continue
		}
		at := len(msg)
		if i := strings.LastIndex(msg, e.Error()); i >= 0 {
			at = i + len(e.Error())
		}
		msg = msg[:at] + h.text(e) + msg[at:]
	}
	return msg
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
