package pairing

import (
	"errors"
	"fmt"
)

// Sentinel errors for the reasons an invite or a pairing is refused.
// Functions in this package return them wrapped with detail; test with
// [errors.Is], or map an error to its one-word reason with [Reason]. A
// command maps every one of them to exit status 2, "bad input".
var (
	// ErrMalformed: the text or image is not a kith invite at all (wrong
	// prefix, bad base32, wrong length, unknown version, bad address).
	ErrMalformed = errors.New("pairing: not a kith invite")
	// ErrTampered: the invite's signature does not verify; it was altered
	// or damaged.
	ErrTampered = errors.New("pairing: the invite was altered or damaged")
	// ErrExpired: the invite's expiry has passed.
	ErrExpired = errors.New("pairing: the invite expired")
	// ErrReused: the invite was already used for a pairing.
	ErrReused = errors.New("pairing: the invite was already used")
	// ErrForeign: the invite is valid but does not belong to this exchange:
	// this device's own invite, a peer that is not the invite's device, or a
	// proof for some other invite.
	ErrForeign = errors.New("pairing: the invite does not belong to this pairing")
	// ErrBlocked: the inviter is a blocked user. This package never returns
	// it on its own; the agent, which knows the block list, wraps it.
	ErrBlocked = errors.New("pairing: the inviter is blocked")
	// ErrStorage: a device could not save a pairing that was otherwise
	// complete (a full disk, a failing store). The agent wraps its store's
	// error with it, so that the other device is told what happened.
	ErrStorage = errors.New("pairing: the device could not save the pairing")
	// ErrRefused: the other device refused the pairing with a reason this
	// version does not know. Refusals with a known reason wrap that reason's
	// sentinel instead.
	ErrRefused = errors.New("pairing: the other device refused the pairing")
)

// Errors from [DecodeImage]. Both are bad input (exit status 2) but not
// invite reasons: [Reason] returns "" for them.
var (
	// ErrNoQRCode: the image was read but holds no readable QR code.
	ErrNoQRCode = errors.New("pairing: no QR code found in the image")
	// ErrImageFormat: the data is not a PNG or JPEG image, or one too large
	// to read.
	ErrImageFormat = errors.New("pairing: not a readable PNG or JPEG image")
)

// reasons lists the sentinels in the order [Reason] tests them, with the word
// that names them on the wire (Reply.Reason) and in command output.
var reasons = []struct {
	err  error
	word string
}{
	{ErrMalformed, "malformed"},
	{ErrTampered, "tampered"},
	{ErrExpired, "expired"},
	{ErrReused, "reused"},
	{ErrForeign, "foreign"},
	{ErrBlocked, "blocked"},
	{ErrStorage, "storage"},
	{ErrRefused, "refused"},
}

// Reason names the refusal that err wraps: "malformed", "tampered",
// "expired", "reused", "foreign", "blocked", "storage" or "refused"; "" when err wraps
// none of them (including nil).
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.word
		}
	}
	return ""
}

// reasonErr returns the sentinel named by word, or nil.
func reasonErr(word string) error {
	for _, r := range reasons {
		if r.word == word {
			return r.err
		}
	}
	return nil
}

// refusal is an error that reads as one full sentence, "pairing: " + msg, and
// wraps kind so that [errors.Is] and [Reason] see it. The sentinels' own
// texts are terse; a refusal says exactly what happened and what to do.
type refusal struct {
	kind error
	msg  string
}

func (e *refusal) Error() string { return "pairing: " + e.msg }
func (e *refusal) Unwrap() error { return e.kind }

// refuse returns a refusal of the given kind with a formatted message.
func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}
