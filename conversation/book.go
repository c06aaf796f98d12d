package conversation

import (
	"errors"
	"time"

	"github.com/kith-project/kith/seed"
)

var errNotYet = errors.New("conversation: not yet implemented")

// Book is a device's conversations, kept in its store. Its methods are
// safe for concurrent use.
type Book struct {
	cfg Config
}

// Open loads the device's conversations from cfg.Store.
func Open(cfg Config) (*Book, error) { return nil, errNotYet }

// Close lets go of the Book; the Store stays open (its owner closes it).
func (b *Book) Close() error { return nil }

// Create makes a conversation: it signs its genesis, stores it and queues
// it for every member device. A bad pattern, topic or rule (wrapping
// *consensus.Error) is bad input (IsBadInput).
func (b *Book) Create(nc NewConversation) (ID, error) { return ID{}, errNotYet }

// Post signs, stores and queues a message of kind with body. A kind or
// choice the pattern refuses, or a decided conversation, is bad input.
func (b *Book) Post(id ID, kind, body string) (MessageID, error) { return MessageID{}, errNotYet }

// Vote posts choice with the pattern's vote kind.
func (b *Book) Vote(id ID, choice string) (MessageID, error) { return MessageID{}, errNotYet }

// Pending lists up to max outbox items for device to, in order (a
// conversation's genesis before its messages).
func (b *Book) Pending(to seed.DevicePublic, max int) []Outgoing { return nil }

// Recipients lists the devices with pending outbox items.
func (b *Book) Recipients() []seed.DevicePublic { return nil }

// Receive takes one envelope from the network. It verifies it, stores it
// durably (a bbolt commit) before returning, decides when the rule became
// true, and returns the ack to send back to the envelope's author (also for
// a duplicate). A refused envelope returns an error wrapping ErrRefused and
// stores nothing; one that must wait for an earlier one returns ErrHeld. An
// ack addressed to this device removes outbox items and returns no ack.
func (b *Book) Receive(env []byte) (ack []byte, err error) { return nil, errNotYet }

// ReceiveBatch is Receive of several envelopes committed together (one
// bbolt commit). acks[i] and errs[i] are what Receive(envs[i]) would
// return.
func (b *Book) ReceiveBatch(envs [][]byte) (acks [][]byte, errs []error) {
	return nil, nil
}

// Inspect reads an envelope's clear header without keys (for forwarders),
// checking its signature and its author's certificate.
func Inspect(env []byte) (Header, error) { return Header{}, errNotYet }

// List summarizes the conversations, most recently updated first.
func (b *Book) List() ([]Summary, error) { return nil, errNotYet }

// Show returns conversation id in full, or ErrNotFound.
func (b *Book) Show(id ID) (View, error) { return View{}, errNotYet }

// Genesis returns the conversation's genesis envelope, for the agent's
// cluster index.
func (b *Book) Genesis(id ID) ([]byte, bool) { return nil, false }

// Tick re-evaluates open conversations whose rule reads elapsed; the agent
// calls it every few seconds.
func (b *Book) Tick() {}

var _ = time.Now
