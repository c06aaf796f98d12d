// Package conversation is a device's conversations with the consensus
// rules that decide them (DESIGN §7).
//
// A conversation begins with a signed genesis (its ID is the genesis's
// hash) naming the topic, the members, the pattern (chat, discussion,
// debate, announcement, invitation: which kinds of message and which vote
// choices are allowed), the rule (a package consensus expression) and the
// members' signed rosters, so that members who are not friends of each
// other can verify and encrypt to each other's devices. Messages and the
// outcome follow, each in its author device's chain (seq and the previous
// envelope's ID) with a Lamport time.
//
// Everything travels as an envelope: a clear, signed header and a payload
// sealed with age to every member device (the layout is in envelope.go
// and payload.go). A [Book] keeps the device's conversations in bbolt
// (package internal/store, buckets conversations, conv_messages and
// conv_outbox), with topics and bodies sealed at rest under a key per
// conversation, itself sealed under [Self].AtRest; and an outbox of every
// envelope a member device has not acknowledged yet, which the agent
// drives with [Book.Recipients], [Book.Pending] and [Book.Receive].
//
// [Book.Receive] verifies an envelope completely before it stores
// anything, commits before it returns the ack, holds an envelope that
// came before what it follows until the gap fills, and decides: the rule
// is evaluated after every accepted message, and an outcome is published,
// verified by re-evaluation and resolved between concurrent ones as
// decide.go describes. docs/conversations.md has the overview and the
// measured figures.
package conversation
