// Package pairing lets two people pair their devices in person, by each
// scanning the QR code on the other's screen (DESIGN §4).
//
// The package is pure logic: it makes and reads invites, draws and reads QR
// codes, and decides, message by message, whether a pairing is complete. The
// agent carries the messages over a QUIC stream whose TLS handshake
// authenticated the peer's device key, and stores the result.
//
// # Invites
//
// An [Invite] says: this device, of the user with this tag, listens at
// these addresses; whoever proves to know this one-time secret before this
// time may pair with it. `kith pair show` displays one with [QRTerminal] or
// [WritePNG]; `kith pair scan` reads one with [DecodeImage] and
// [ParseInvite].
//
// The secret is in the QR code: the code is meant to be seen only by the
// person standing in front of the screen. It is single-use (a [Machine]
// consumes it) and expires, ten minutes after it is shown by default.
//
// # Binary form, version 2
//
// [NewInvite] makes version 2, which is small enough for a QR code that fits
// an 80×24 terminal. All integers are big-endian. Offsets are in bytes.
//
//	offset  size  field
//	0       32    device ID: the device's ed25519 public key
//	32      4     user tag: the first 4 bytes of the user ID
//	36      16    one-time secret
//	52      4     expiry: unsigned Unix seconds (good until 2106)
//	56      1     address counts: IPv4 addresses in the high 4 bits, IPv6 in
//	              the low 4; 1 to 3 in all
//	57      ...   the IPv4 addresses, each 4 bytes and a 2-byte port, then
//	              the IPv6 addresses, each 16 bytes and a 2-byte port
//	end-4   4     check: the first 4 bytes of
//	              SHA-256("kith/v2/invite-check\x00" || every byte before it)
//
// The version is the text form's prefix, "KITH2:"; there is no version
// byte. An invite is 67 bytes (one IPv4 address) to 115 bytes (three IPv6
// addresses). NewInvite keeps the first 3 addresses it is given, and IPv6
// ones only when there is no IPv4 one. Decoding accepts only what encoding
// produces: no trailing bytes, no IPv4-mapped IPv6 address, no port 0, no
// unspecified or multicast address.
//
// Version 1 carried the full user ID and an ed25519 signature by the device
// key: 96 bytes that version 2 drops, for these reasons. The scanner pins
// the invite's device key, and the QUIC handshake proves it: no one else can
// answer. The HMAC proofs prove the secret, and bind both invites, every
// byte of them, through the transcript: an altered field (an address, the
// expiry, the tag) makes the two sides hash different invites, so the proofs
// fail ("foreign") and the check codes differ. The signature never stopped a
// swapped code either: whoever swaps one signs their own invite, and only the
// check code catches that. What the signature did on its own was to tell an
// altered or damaged code ("tampered") from one that is not an invite at all;
// the 4-byte check does that now, for damage and for careless editing, which
// is all it can do: anyone can recompute it, so it is a checksum, not a MAC.
// A MAC keyed with the secret would be no better, since the secret is in the
// same code. The user ID is known for sure only from the device certificate
// exchanged once the pairing is done, in both versions; the 4-byte tag lets
// the scanner refuse a blocked user, and tell an own device from a friend,
// before it sends anything, and the certificate must match it.
//
// # Binary form, version 1
//
// Still read, no longer made. Its text form starts with "KITH1:".
//
//	offset  size  field
//	0       1     version, 1
//	1       32    user ID: the user's ed25519 public key
//	33      32    device ID: the device's ed25519 public key
//	65      16    one-time secret
//	81      4     expiry: unsigned Unix seconds (good until 2106)
//	85      1     n, the number of addresses, 1 to 8
//	86      ...   n addresses, each one of:
//	                4, IPv4 address (4 bytes), port (2 bytes)    7 bytes
//	                6, IPv6 address (16 bytes), port (2 bytes)  19 bytes
//	end-64  64    ed25519 signature by the device key over
//	              "kith/v1/invite\x00" || every byte before the signature
//
// A version 1 invite is 157 bytes (one IPv4 address) to 302 bytes (eight IPv6
// addresses).
//
// # Text form and QR code
//
// The invite code is "KITH2:" (or "KITH1:") followed by the binary form in
// RFC 4648 base32 without padding. Every character is in the QR code
// alphanumeric set (0–9, A–Z, space and $%*+-./:), which packs two
// characters in 11 bits: the code takes 10% more room in a QR code than the
// raw bytes would in 8-bit mode, and stays text that can be pasted.
//
// A QR code is made at the smallest version that holds the code, at the most
// robust error correction level that version allows. A version 2 invite with
// one IPv4 address is a code of 114 characters: version 4 (33×33 modules) at
// level L; with three IPv4 addresses, 133 characters, version 5 (37×37) at
// level L. [QRTerminal] draws it with half blocks, two rows of modules per
// line, black on white in explicit colours, inside a quiet zone of 2
// modules: 37 columns by 19 lines for version 4, 41 by 21 for version 5, so
// that it fits an 80×24 terminal in a dark or a light theme. [WritePNG] keeps
// the standard quiet zone of 4.
//
// # Handshake
//
// Both people show an invite and both scan the other's. Let lo and hi be the
// two invites ordered by device ID (bytewise), and || concatenation. Both
// devices compute the transcript
//
//	T = SHA-256("kith/v1/pair-transcript\x00" || lo.Bytes() || hi.Bytes())
//
// Each device proves it scanned the other's invite with
//
//	proof = HMAC-SHA256(key = the peer's secret, "kith/v1/pair-proof\x00" || T || own device ID)
//
// and both show the short authentication string (SAS): the first 8 bytes of
// HKDF-SHA256(input key material T, no salt, info "kith/v1/sas"), as a
// big-endian integer modulo 10⁶, printed "123 456". If someone swapped a
// code, the two devices hash different invites and the strings differ.
//
// A device that scanned connects to the other and sends a [Hello]: its own
// invite code and its proof. The other answers with a [Reply]:
//
//   - "paired" and its own proof, if its user has scanned that same invite;
//   - "waiting", if its user has not scanned yet: it keeps the proof, and
//     when the user scans, it connects back with its own Hello (the agent
//     adds its name and device certificate, never the window secret, so
//     that the scanner can show whom it is pairing with);
//   - "refused" and a reason word (see [Reason]) otherwise.
//
// A [Machine] holds this state for one invite of ours. It is Done when its
// user scanned the peer's invite and the peer proved it scanned ours, in
// whichever order these happen. Its invite is then consumed: a Hello from
// any other device is refused as reused, while the paired device, whose
// Hello may have crossed the one that completed the pairing, is answered
// "paired" again. Hello and Reply travel as JSON, inside the
// length-framed stream of the agent:
//
//	{"invite": "KITH1:…", "proof": "<base64>", "profile": {…}}
//	{"status": "paired", "proof": "<base64>", "profile": {…}}
//	{"status": "refused", "reason": "expired"}
//	profile: {"name": "…", "cert": "<base64>", "window": "<base64>", "addrs": ["host:port"]}
//
// The profile (name, device certificate, presence window secret) is used
// only once the Machine is Done.
//
// A side behind a NAT may not be reachable for the other's Hello. It does
// not need to be: when the other side's user scans, the Hello that side had
// received already completes its Machine, and the side that could not be
// reached sends its own Hello again while it waits, and gets "paired" and
// the proof in the answer.
//
// # Refusals
//
// Every refusal wraps one sentinel a command maps to exit status 2 and to a
// reason word: [ErrMalformed], [ErrTampered], [ErrExpired], [ErrReused],
// [ErrForeign], [ErrBlocked], and [ErrRefused] for a refusal from the other
// side. No error message and no String method prints a secret or an invite
// code.
package pairing
