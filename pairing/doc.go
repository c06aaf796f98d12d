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
// An [Invite] says: this device, of this user, listens at these addresses;
// whoever proves to know this one-time secret before this time may pair
// with it. The device key signs it. `kith pair show` displays one with
// [QRTerminal] or [WritePNG]; `kith pair scan` reads one with [DecodeImage]
// and [ParseInvite].
//
// The secret is in the QR code: the code is meant to be seen only by the
// person standing in front of the screen. It is single-use (a [Machine]
// consumes it) and expires, ten minutes after it is shown by default.
//
// # Binary form
//
// All integers are big-endian. Offsets are in bytes.
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
// An invite is 157 bytes (one IPv4 address) to 302 bytes (eight IPv6
// addresses). Decoding accepts only what encoding produces: no trailing
// bytes, no IPv4-mapped IPv6 address, no port 0, no unspecified or
// multicast address, so the signature covers every bit that was read.
//
// # Text form
//
// The invite code is "KITH1:" followed by the binary form in RFC 4648 base32
// without padding. Every character is in the QR code alphanumeric set
// (0–9, A–Z, space and $%*+-./:), which packs two characters in 11 bits:
// the code takes 10% more room in a QR code than the raw bytes would in 8-bit
// mode (and 30% less than its own text in 8-bit mode), and stays text that
// can be pasted. An invite with three IPv4 and one IPv6 address is 190
// bytes, a code of 310 characters: a version 10 QR code (57×57 modules) at
// error correction level M, which holds up to 311.
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
//     when the user scans, it connects back with its own Hello;
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
// # Refusals
//
// Every refusal wraps one sentinel a command maps to exit status 2 and to a
// reason word: [ErrMalformed], [ErrTampered], [ErrExpired], [ErrReused],
// [ErrForeign], [ErrBlocked], and [ErrRefused] for a refusal from the other
// side. No error message and no String method prints a secret or an invite
// code.
package pairing
