// Package consensus compiles and evaluates the rules that decide a
// conversation (DESIGN §7).
//
// A rule is an expr-lang/expr expression, compiled once against a typed
// environment and required to return a bool. It reads:
//
//	members     []string          member user IDs (lowercase hex)
//	n           int               number of members
//	votes       []{by, choice, at} each member's latest vote or rsvp
//	messages    []{by, kind, body, at} every accepted message, in order
//	elapsed     float             seconds from the start to the evaluation time
//	voted()     int               members with a vote
//	tally(c)    int               members whose latest vote is c
//	share(c)    float             tally(c) / voted(), 0 when nobody voted
//	quorum(f)   bool              voted() / n >= f
//	majority(c) bool              share(c) > 0.5
//	unanimous(c) bool             every member's latest vote is c
//
// The at of a vote or message is seconds since the Unix epoch, as a float.
//
// # Purity and bounds
//
// Compile walks the parsed tree and refuses, with a 1-based line and
// column, anything that could make two devices disagree or that could run
// unbounded: builtins outside an allow-list (so every builtin reading the
// clock, the time zone or map iteration order: now, date, timezone,
// duration, keys, values, toPairs, fromPairs, groupBy, toJSON, fromJSON,
// get, …), method calls, $env, more than MaxNodes nodes, predicates
// (count, filter, all, …) nested deeper than MaxPredicateDepth, and a source
// longer than MaxSourceBytes. The environment's values are plain structs,
// slices and funcs with no methods. Eval runs with a memory budget
// (MemoryBudget, vm.VM.MemoryBudget).
//
// # Tally
//
// A Tally keeps what the helpers read incrementally: Add costs O(1) (a map
// lookup and a slice append or in-place update), and the votes and messages
// lists the rule sees are the Tally's own slices, never rebuilt per Eval. A
// preset therefore costs O(1) per message at any number of members.
package consensus
