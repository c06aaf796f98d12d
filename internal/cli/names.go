package cli

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/seed"
)

// userIDHex is the length of a user ID in hex.
const userIDHex = 64

// resolveUser turns what a person typed for USER into a full user ID: a
// full ID as is, or a friend's name or the start of their ID, looked up in
// the agent's friends. A name or prefix that matches no friend, or more
// than one, is bad input; the matches are listed as hints.
//
// known reports whether the user is one of the friends (met, or blocked
// before); a full ID of a user never met is not known.
func resolveUser(ctx context.Context, c *control.Client, arg string) (id string, known bool, err error) {
	typed := strings.ToLower(strings.TrimSpace(arg))
	fs, err := c.Friends(ctx)
	if err != nil {
		return "", false, agentError(err)
	}
	if len(typed) == userIDHex && isHex(typed) {
		u, err := seed.ParseUserPublic(typed)
		if err != nil {
			return "", false, badInput(err)
		}
		if u.Equal(seed.UserPublic{}) {
			return "", false, badInput(withHint(fmt.Errorf("%s is not a user ID", shortID(typed)+"…"), `"kith friends" lists your friends' IDs`))
		}
		for _, f := range fs {
			if f.UserID.Equal(u) {
				return typed, true, nil
			}
		}
		return typed, false, nil
	}
	var byName, byPrefix []control.FriendView
	for _, f := range fs {
		if strings.EqualFold(sanitize(f.Name), strings.TrimSpace(arg)) {
			byName = append(byName, f)
		}
		if isHex(typed) && strings.HasPrefix(f.UserID.ID(), typed) {
			byPrefix = append(byPrefix, f)
		}
	}
	matches := byName
	if len(matches) == 0 {
		matches = byPrefix
	}
	switch len(matches) {
	case 1:
		return matches[0].UserID.ID(), true, nil
	case 0:
		what := fmt.Sprintf("no friend is named %q", sanitize(arg))
		if isHex(typed) {
			what = fmt.Sprintf("no friend is named %q or has a user ID starting with %s", sanitize(arg), typed)
		}
		return "", false, badInput(withHint(fmt.Errorf("%s", what),
			`give a friend's name or the start of their user ID, as "kith friends" lists them`,
			"for someone you have never met, give their full user ID (64 hexadecimal characters)"))
	}
	hs := []string{"give more of the user ID to choose one of:"}
	for _, f := range matches {
		hs = append(hs, fmt.Sprintf("  %s %s", f.UserID.ID(), sanitize(f.Name)))
	}
	return "", false, badInput(withHint(fmt.Errorf("%q matches %d friends", sanitize(arg), len(matches)), hs...))
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// sanitize makes a name that a peer chose safe to print: control
// characters, bidirectional overrides and other invisible format
// characters are dropped, so that a name cannot move the cursor, recolour
// the terminal or reorder the line around it.
func sanitize(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, s)
}

// clip sanitizes s and cuts it to at most n characters, marking a cut
// with "…".
func clip(s string, n int) string {
	s = sanitize(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
