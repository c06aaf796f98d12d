package consensus

import (
	"time"

	"github.com/expr-lang/expr"
)

// ruleEnv is the environment a rule sees. None of these types may have a
// method: expr makes the methods of environment values callable, and a rule
// must reach nothing but data and the helpers below (a test checks).
type ruleEnv struct {
	Members  []string     `expr:"members"`
	N        int          `expr:"n"`
	Votes    []envVote    `expr:"votes"`
	Messages []envMessage `expr:"messages"`
	Elapsed  float64      `expr:"elapsed"`

	Voted     func() int           `expr:"voted"`
	Tally     func(string) int     `expr:"tally"`
	Share     func(string) float64 `expr:"share"`
	Quorum    func(float64) bool   `expr:"quorum"`
	Majority  func(string) bool    `expr:"majority"`
	Unanimous func(string) bool    `expr:"unanimous"`
}

// envVote is a member's latest vote (or rsvp) as a rule sees it.
type envVote struct {
	By     string  `expr:"by"`
	Choice string  `expr:"choice"`
	At     float64 `expr:"at"` // seconds since the Unix epoch
}

// envMessage is an accepted message as a rule sees it.
type envMessage struct {
	By   string  `expr:"by"`
	Kind string  `expr:"kind"`
	Body string  `expr:"body"`
	At   float64 `expr:"at"` // seconds since the Unix epoch
}

// compileOptions are the expr options every rule compiles with.
func compileOptions() []expr.Option {
	return []expr.Option{
		expr.Env(&ruleEnv{}),
		expr.AsBool(),
		expr.MaxNodes(MaxNodes),
	}
}

// unixSeconds is t as float seconds since the Unix epoch.
func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}
