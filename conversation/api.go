package conversation

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kith-project/kith/internal/store"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// ID names a conversation: the SHA-256 of its genesis envelope's signed
// bytes.
type ID [32]byte

// String returns the ID in lowercase hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText writes the ID in lowercase hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads an ID in hex.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseID reads a conversation ID written in hex (64 digits).
func ParseID(s string) (ID, error) {
	var id ID
	if err := parseHex32(s, (*[32]byte)(&id)); err != nil {
		return ID{}, fmt.Errorf("conversation: bad conversation ID: %w", err)
	}
	return id, nil
}

// MessageID names a message or an outcome: the SHA-256 of its envelope's
// signed bytes.
type MessageID [32]byte

// String returns the ID in lowercase hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText writes the ID in lowercase hex.
func (id MessageID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads a message ID in hex.
func (id *MessageID) UnmarshalText(b []byte) error {
	p, err := ParseMessageID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseMessageID reads a message ID written in hex (64 digits).
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	if err := parseHex32(s, (*[32]byte)(&id)); err != nil {
		return MessageID{}, fmt.Errorf("conversation: bad message ID: %w", err)
	}
	return id, nil
}

func parseHex32(s string, dst *[32]byte) error {
	if len(s) != 64 {
		return fmt.Errorf("%d hex digits, want 64", len(s))
	}
	if _, err := hex.Decode(dst[:], []byte(s)); err != nil {
		return err
	}
	return nil
}

// Errors callers branch on. Returned errors wrap them with the reason.
var (
	// ErrRefused: Receive refused an envelope (forged, foreign, out of
	// pattern, after the decision, ...). Nothing of it was stored.
	ErrRefused = errors.New("conversation: refused")
	// ErrHeld: Receive keeps the envelope in memory until what it follows
	// (the genesis, an earlier message of its chain, the messages an
	// outcome names, messages up to its Lamport time) arrives, or this
	// device's clock reaches its time (see Held envelopes in held.go; it
	// may be evicted). It is not acknowledged: the sender sends it again
	// later, and then gets the ack.
	ErrHeld = errors.New("conversation: held until an earlier envelope arrives")
	// ErrNotFound: no such conversation on this device.
	ErrNotFound = errors.New("conversation: no such conversation")
	// ErrClosed: the Book is closed.
	ErrClosed = errors.New("conversation: the book is closed")
)

// badInput marks the user's mistakes (a bad pattern, rule, kind, choice,
// a decided conversation): see IsBadInput.
type badInput struct{ err error }

func (e *badInput) Error() string { return e.err.Error() }
func (e *badInput) Unwrap() error { return e.err }

func badf(format string, args ...any) error {
	return &badInput{fmt.Errorf("conversation: "+format, args...)}
}

// IsBadInput reports whether err is the user's mistake (the CLI's exit 2)
// rather than a failure.
func IsBadInput(err error) bool {
	var b *badInput
	return errors.As(err, &b)
}

// Self is this device: what it signs and opens with.
type Self struct {
	Key     seed.DeviceKey
	Cert    seed.DeviceCert // carries User, Device, Archive recipient
	Archive seed.ArchiveKey // opens payloads sealed to this device
	// AtRest seals the per-conversation keys that seal topics and bodies
	// in bbolt. The agent derives it from the device key with HKDF, info
	// "kith/v1/conversation-at-rest".
	AtRest [32]byte
}

// Directory says which devices a user has, as this device knows them (own
// roster, friends' signed rosters). The Book falls back on the rosters
// carried in a conversation's genesis.
type Directory interface {
	Certs(user seed.UserPublic) []seed.DeviceCert // non-revoked certs
	// Revoked must count only a revocation signed by the device's own
	// user (the user of its certificate), never one that another user's
	// roster carries.
	Revoked(device seed.DevicePublic) bool
}

// Config is what Open needs.
type Config struct {
	Store *store.Store
	Self  Self
	Dir   Directory        // may be nil: only the genesis rosters then
	Now   func() time.Time // nil: time.Now
	Log   *slog.Logger     // nil: slog.Default
	// OnChange is called (outside the Book's lock) after anything of
	// conversation ID was stored: a message, an outcome, a genesis.
	OnChange func(ID)
}

// NewConversation is what Create makes a conversation of.
type NewConversation struct {
	Topic   string
	Pattern Pattern
	Rule    string            // rule text (preset already expanded); "" for chat
	Members []seed.UserPublic // the other members; the creator is added
	// Rosters are the members' signed rosters (the creator's own too),
	// carried in the genesis so members who are not friends can verify
	// and encrypt to each other.
	Rosters []roster.Signed
}

// Outgoing is one outbox item: an envelope for a device, not yet
// acknowledged by it.
type Outgoing struct {
	To       seed.DevicePublic
	ToUser   seed.UserPublic
	Seq      uint64 // the item's place in this device's outbox: ascending in Pending
	Envelope []byte
}

// Header is the clear part of an envelope, what a forwarder can read
// without keys. Inspect has checked the signature and that Cert is signed
// by its user, not that the user is a member.
type Header struct {
	Kind    string            // "genesis", "message", "outcome" or "ack"
	Conv    ID                // the conversation (for a genesis: its own ID)
	ID      MessageID         // the envelope's ID (for a genesis equal to Conv)
	From    seed.DevicePublic // the author device
	User    seed.UserPublic   // the author's user
	Seq     uint64            // the author device's sequence number in the conversation
	Prev    MessageID         // the author device's previous envelope, zero for its first
	Lamport uint64
	To      seed.DevicePublic // for an ack: the device whose outbox it drains
	Acked   []MessageID       // for an ack: what it acknowledges
}

// Summary is a conversation in a listing.
type Summary struct {
	ID      ID
	Topic   string
	Pattern Pattern
	Status  string // "open" or "decided"
	Members []seed.UserPublic
	Updated time.Time
}

// Statuses of a conversation.
const (
	StatusOpen    = "open"
	StatusDecided = "decided"
)

// View is a conversation in full.
type View struct {
	Summary
	Rule     string
	Creator  seed.UserPublic
	Created  time.Time
	Messages []MessageView // in the deciding order: ascending (Lamport, ID)
	Tally    map[string]int
	Outcome  *Outcome // nil while open
	// RuleError is why the rule of an open conversation failed when it
	// was last evaluated ("" if it evaluated): it cannot decide until
	// the messages change.
	RuleError string
}

// MessageView is one accepted message.
type MessageView struct {
	ID      MessageID
	By      seed.UserPublic
	Device  seed.DevicePublic
	Kind    string
	Body    string
	At      time.Time
	Lamport uint64
}

// Outcome is the decision of a conversation.
type Outcome struct {
	Result      string
	Tally       map[string]int
	EvaluatedAt time.Time
	// MessageSet is the lowercase hex SHA-256 of the ascending message IDs
	// it evaluated, concatenated.
	MessageSet      string
	Messages        []MessageID // the message IDs it evaluated, ascending
	DecidedBy       seed.UserPublic
	DecidedByDevice seed.DevicePublic
	Lamport         uint64
	ID              MessageID
}
