package conversation

import (
	"slices"
	"strings"
	"unicode"
)

// Pattern says which kinds of message members may send and which choices a
// vote may take (DESIGN §7):
//
//	pattern       kinds                                 vote choices
//	chat          text                                  — (no rule)
//	discussion    text, vote                            yes, no, abstain
//	debate        position, argument, rebuttal, vote    yes, no, abstain
//	announcement  text (creator only), ack              —
//	invitation    text, rsvp                            yes, no, maybe
type Pattern string

// The patterns.
const (
	Chat         Pattern = "chat"
	Discussion   Pattern = "discussion"
	Debate       Pattern = "debate"
	Announcement Pattern = "announcement"
	Invitation   Pattern = "invitation"
)

type patternInfo struct {
	kinds, choices []string
	voteKind       string
}

var patterns = map[Pattern]patternInfo{
	Chat:         {kinds: []string{"text"}},
	Discussion:   {kinds: []string{"text", "vote"}, choices: []string{"yes", "no", "abstain"}, voteKind: "vote"},
	Debate:       {kinds: []string{"position", "argument", "rebuttal", "vote"}, choices: []string{"yes", "no", "abstain"}, voteKind: "vote"},
	Announcement: {kinds: []string{"text", "ack"}},
	Invitation:   {kinds: []string{"text", "rsvp"}, choices: []string{"yes", "no", "maybe"}, voteKind: "rsvp"},
}

// Patterns lists the patterns.
func Patterns() []Pattern { return []Pattern{Chat, Discussion, Debate, Announcement, Invitation} }

// ParsePattern reads a pattern's name; an unknown one is bad input.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern(s)
	if _, ok := patterns[p]; !ok {
		names := make([]string, 0, len(patterns))
		for _, q := range Patterns() {
			names = append(names, string(q))
		}
		return "", badf("unknown pattern %q (known: %s)", sanitize(s, 32), strings.Join(names, ", "))
	}
	return p, nil
}

// Kinds lists the kinds of message the pattern allows.
func (p Pattern) Kinds() []string { return slices.Clone(patterns[p].kinds) }

// Choices lists the choices a vote may take; nil for a pattern without
// votes.
func (p Pattern) Choices() []string { return slices.Clone(patterns[p].choices) }

// VoteKind is the kind of a vote: "vote", "rsvp" or "" (no votes).
func (p Pattern) VoteKind() string { return patterns[p].voteKind }

// HasRule reports whether the pattern decides with a rule: every pattern
// but chat.
func (p Pattern) HasRule() bool { return p != Chat }

// allows reports whether a member (creator or not) may send kind with body.
func (p Pattern) allows(kind, body string, creator bool) error {
	info, ok := patterns[p]
	if !ok {
		return badf("unknown pattern %q", sanitize(string(p), 32))
	}
	if !slices.Contains(info.kinds, kind) {
		return badf("a %s does not take %q messages (kinds: %s)", p, sanitize(kind, 32), strings.Join(info.kinds, ", "))
	}
	if p == Announcement && kind == "text" && !creator {
		return badf("only the creator posts text in an announcement")
	}
	if kind == info.voteKind && !slices.Contains(info.choices, body) {
		return badf("%q is not a choice of a %s (choices: %s)", sanitize(body, 32), p, strings.Join(info.choices, ", "))
	}
	return nil
}

// sanitize bounds s and replaces control characters, bidirectional
// controls and other invisible format characters, so a peer's text can go
// into an error message or a log line without moving the cursor or
// reordering the line around it.
func sanitize(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Bidi_Control, r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
