package conversation

import (
	"bytes"
	"encoding/binary"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// # Payloads
//
// Inside the age file of an envelope (integers big-endian, times Unix
// milliseconds as signed 8-byte integers, strings UTF-8):
//
// Genesis:
//
//	created   8 bytes
//	pattern   1-byte length, then the pattern's name
//	rule      2-byte length (at most MaxRuleBytes), then the rule's source; empty for chat
//	topic     2-byte length (at most MaxTopicBytes), then the topic
//	nmembers  1 byte, 2 to MaxMembers, then the members' user keys, 32 bytes
//	          each, strictly ascending; the creator (the certificate's user) among them
//	nrosters  1 byte, at most nmembers, then for each a 4-byte length and a
//	          signed roster (package roster), strictly ascending by user, every user a member
//
// Message:
//
//	at        8 bytes, the author's clock
//	kind      1-byte length (1 to 32), then the kind
//	body      4-byte length (at most MaxBodyBytes), then the body
//
// Outcome:
//
//	evaluated 8 bytes, the time the rule was evaluated at
//	result    1-byte length, then the result: the choice with the highest tally
//	ntally    1 byte, then for each: 1-byte length, choice, 4-byte count; strictly ascending by choice
//	set       32 bytes, SHA-256 of the message IDs below, concatenated
//	nids      4 bytes, at most MaxMessages, then the message IDs, 32 bytes each, strictly ascending
//
// Nothing follows the last field; every length is checked against what
// is left.

type genesisPayload struct {
	created time.Time
	pattern Pattern
	rule    string
	topic   string
	members []seed.UserPublic
	rosters []roster.Signed
}

type messagePayload struct {
	at   time.Time
	kind string
	body string
}

type outcomePayload struct {
	evaluated time.Time
	result    string
	tally     map[string]int
	set       [32]byte
	ids       []MessageID
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixMilli()))
}

func readTime(d *reader) time.Time { return time.UnixMilli(int64(d.uint64())).UTC() }

func (g genesisPayload) marshal() []byte {
	b := appendTime(nil, g.created)
	b = append(b, byte(len(g.pattern)))
	b = append(b, g.pattern...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(g.rule)))
	b = append(b, g.rule...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(g.topic)))
	b = append(b, g.topic...)
	b = append(b, byte(len(g.members)))
	for _, m := range g.members {
		b = append(b, m[:]...)
	}
	b = append(b, byte(len(g.rosters)))
	for _, r := range g.rosters {
		raw := r.Marshal()
		b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
		b = append(b, raw...)
	}
	return b
}

func parseGenesis(p []byte) (genesisPayload, error) {
	d := reader{b: p}
	var g genesisPayload
	g.created = readTime(&d)
	g.pattern = Pattern(d.next(int(d.byte())))
	g.rule = string(d.next(int(d.uint16())))
	g.topic = string(d.next(int(d.uint16())))
	n := int(d.byte())
	if d.err == nil && (n < 2 || n > MaxMembers) {
		return g, refusef("a genesis of %d members (2 to %d)", n, MaxMembers)
	}
	for i := 0; i < n && d.err == nil; i++ {
		var u seed.UserPublic
		d.read(u[:])
		if i > 0 && bytes.Compare(g.members[i-1][:], u[:]) >= 0 {
			return g, refusef("the genesis's members are not strictly ascending")
		}
		g.members = append(g.members, u)
	}
	nr := int(d.byte())
	if d.err == nil && nr > n {
		return g, refusef("a genesis with more rosters than members")
	}
	for i := 0; i < nr && d.err == nil; i++ {
		raw := d.next(int(d.uint32()))
		if d.err != nil {
			break
		}
		s, err := roster.ParseSigned(raw)
		if err != nil {
			return g, refusef("a roster in the genesis: %w", err)
		}
		if i > 0 && bytes.Compare(g.rosters[i-1].User[:], s.User[:]) >= 0 {
			return g, refusef("the genesis's rosters are not strictly ascending")
		}
		if !slices.Contains(g.members, s.User) {
			return g, refusef("the genesis carries the roster of %s, not a member", s.User.Short())
		}
		g.rosters = append(g.rosters, s)
	}
	if d.err != nil || len(d.b) != 0 {
		return g, refusef("a malformed genesis payload")
	}
	if _, ok := patterns[g.pattern]; !ok {
		return g, refusef("unknown pattern %q", sanitize(string(g.pattern), 32))
	}
	if err := checkText("topic", g.topic, MaxTopicBytes); err != nil {
		return g, refusef("%w", err)
	}
	if len(g.rule) > MaxRuleBytes || !utf8.ValidString(g.rule) {
		return g, refusef("a rule of %d bytes or not UTF-8", len(g.rule))
	}
	return g, nil
}

func (m messagePayload) marshal() []byte {
	b := appendTime(nil, m.at)
	b = append(b, byte(len(m.kind)))
	b = append(b, m.kind...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.body)))
	return append(b, m.body...)
}

func parseMessage(p []byte) (messagePayload, error) {
	d := reader{b: p}
	var m messagePayload
	m.at = readTime(&d)
	k := int(d.byte())
	if d.err == nil && (k == 0 || k > maxKindBytes) {
		return m, refusef("a kind of %d bytes", k)
	}
	m.kind = string(d.next(k))
	n := d.uint32()
	if d.err == nil && n > MaxBodyBytes {
		return m, refusef("a body of %d bytes is more than %d", n, MaxBodyBytes)
	}
	m.body = string(d.next(int(n)))
	if d.err != nil || len(d.b) != 0 {
		return m, refusef("a malformed message payload")
	}
	if !utf8.ValidString(m.kind) {
		return m, refusef("a kind that is not UTF-8")
	}
	if err := checkText("body", m.body, MaxBodyBytes); err != nil {
		return m, refusef("%w", err)
	}
	return m, nil
}

func (o outcomePayload) marshal() []byte {
	b := appendTime(nil, o.evaluated)
	b = append(b, byte(len(o.result)))
	b = append(b, o.result...)
	choices := make([]string, 0, len(o.tally))
	for c := range o.tally {
		choices = append(choices, c)
	}
	slices.Sort(choices)
	b = append(b, byte(len(choices)))
	for _, c := range choices {
		b = append(b, byte(len(c)))
		b = append(b, c...)
		b = binary.BigEndian.AppendUint32(b, uint32(o.tally[c]))
	}
	b = append(b, o.set[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(o.ids)))
	for _, id := range o.ids {
		b = append(b, id[:]...)
	}
	return b
}

func parseOutcome(p []byte) (outcomePayload, error) {
	d := reader{b: p}
	var o outcomePayload
	o.evaluated = readTime(&d)
	o.result = string(d.next(int(d.byte())))
	nt := int(d.byte())
	o.tally = map[string]int{}
	prev := ""
	for i := 0; i < nt && d.err == nil; i++ {
		c := string(d.next(int(d.byte())))
		v := d.uint32()
		if d.err != nil {
			break
		}
		if (i > 0 && c <= prev) || c == "" || v == 0 || v > MaxMembers {
			return o, refusef("a malformed tally in an outcome")
		}
		o.tally[c], prev = int(v), c
	}
	d.read(o.set[:])
	n := d.uint32()
	if d.err == nil && n > MaxMessages {
		return o, refusef("an outcome naming %d messages (at most %d)", n, MaxMessages)
	}
	for i := 0; i < int(n) && d.err == nil; i++ {
		var id MessageID
		d.read(id[:])
		if i > 0 && bytes.Compare(o.ids[i-1][:], id[:]) >= 0 {
			return o, refusef("an outcome's message IDs are not strictly ascending")
		}
		o.ids = append(o.ids, id)
	}
	if d.err != nil || len(d.b) != 0 {
		return o, refusef("a malformed outcome payload")
	}
	if setHash(o.ids) != o.set {
		return o, refusef("an outcome's message-set hash does not match its message IDs")
	}
	return o, nil
}

// setHash is the message-set hash of ascending IDs.
func setHash(ids []MessageID) [32]byte {
	h := newHash()
	for _, id := range ids {
		h.Write(id[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// checkText refuses text that is too long, not UTF-8 or has control
// characters other than newline and tab.
func checkText(what, s string, max int) error {
	switch {
	case len(s) > max:
		return badf("the %s is %d bytes; at most %d", what, len(s), max)
	case !utf8.ValidString(s):
		return badf("the %s is not UTF-8", what)
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return badf("the %s has a control character (%U)", what, r)
		}
	}
	return nil
}
