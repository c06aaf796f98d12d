// Package conversation is a device's conversations with the consensus rules
// that decide them (DESIGN §7): signed, sealed envelopes, per-device chains,
// an outbox of what every member device has not acknowledged yet, and the
// deciding protocol. The wire format is documented in envelope.go.
package conversation
