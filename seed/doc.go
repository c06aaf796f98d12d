// Package seed turns one BIP39 seed phrase into every key a kith user has.
//
// A person's whole identity in kith is a phrase of 12 to 24 English words.
// From it this package derives, deterministically and without storing
// anything, the user's signing key (whose public half is the user ID), each
// device's signing key (the device ID) and archive key, the recovery archive
// key, and the secret that schedules presence windows. It also signs and
// checks the device certificates and revocations by which the user key
// vouches for devices.
//
// # Phrases
//
// [Generate] makes a phrase from crypto/rand entropy: 24 words (256 bits) by
// default, or 12, 15, 18 or 21. [ParsePhrase] reads a phrase the way a person
// types or pastes it. It applies Unicode NFKD (as BIP39 requires), folds
// case, and splits on any run of white space (spaces, tabs, line breaks,
// no-break and ideographic spaces), commas or zero-width spaces, so
// "Abandon\tABILITY\r\n able" is the same phrase as "abandon ability able".
// Accents and invisible characters inside a word are dropped ("légal" is
// "legal"). A word may be abbreviated to its first four or more letters,
// which identify every word of the English list. Numbered lists ("1. abandon 2) ability")
// are accepted when every word carries a number and the numbers run from 1
// to N, in any order (a two-column paste is put back in order).
//
// Errors are precise, and all of them match [ErrInvalidPhrase] with
// errors.Is: an unknown word gives a [*WordError] naming its position and
// the closest words of the list; a wrong number of words gives
// [ErrWordCount]; a phrase whose checksum does not match gives
// [ErrChecksum]; numbers that do not run from 1 to N give [ErrNumbering]. A
// word error repeats what the user typed; it is meant for the user's own
// terminal and must never be logged.
//
// [Phrase.Seed] is exactly BIP39's seed function: PBKDF2-HMAC-SHA512 with
// 2048 iterations over NFKD(phrase), salted with "mnemonic" +
// NFKD(passphrase), giving 64 bytes. The passphrase is BIP39's optional
// "extra word": a different passphrase gives different keys. It is not the
// lock passphrase that protects a device's files, which never enters
// derivation. The passphrase is used as given, after NFKD only: it is not
// trimmed or case-folded, so "é" typed composed or decomposed gives the same
// seed but "Secret" and "secret" do not.
//
// Why not go-bip39 alone: go-bip39 v1.1.0 hashes the raw string without NFKD
// and without collapsing white space, so a double space changes the seed,
// and its word list is global state. This package uses only its English word
// list, and normalizes, checks and hashes itself.
//
// # Derivation
//
// Keys are derived from the 64-byte seed with SLIP-0010, every index
// hardened, under the purpose P = 1802073192 (the ASCII bytes of "kith"):
//
//	user signing key          ed25519     m/P'/0'
//	device i signing key      ed25519     m/P'/1'/i'
//	device i archive key      curve25519  m/P'/2'/i'
//	recovery archive key      curve25519  m/P'/2'/2147483647'
//	presence window secret    ed25519     m/P'/3'/0', then HKDF-SHA256
//
// [DeriveEd25519] and [DeriveCurve25519] are the generic SLIP-0010 functions
// (HMAC keys "ed25519 seed" and "curve25519 seed"). For curve25519 the
// private key is the 32 bytes I_L as they are, and the public key is
// X25519(I_L, 9). The window secret is HKDF-SHA256 with the 32-byte private
// key at m/P'/3'/0' as input key material, no salt, and the info
// "kith/v1/window".
//
// Device index 2147483647 is the recovery key's, so device indexes run from
// 0 to [MaxDeviceIndex].
//
// # Key roles
//
// Each role has its own type, so that a device key cannot be passed where
// the user key is expected: [UserKey] and [UserPublic], [DeviceKey] and
// [DevicePublic], [ArchiveKey] and [ArchiveRecipient], and [WindowSecret].
// Public keys print as lowercase hex (an [ArchiveRecipient] as the age
// recipient "age1…") and compare in constant time with Equal. Private keys
// never print: every fmt verb, and their slog and JSON forms, show at most
// the public key. A [Phrase] prints its words only with %s, %v and %q.
// An [ArchiveKey] is an age X25519 identity ("AGE-SECRET-KEY-1…"), so stock
// age opens what kith seals. The user key has no byte form at all: it exists
// only while a phrase has been typed, and is never written to disk.
//
// # Device certificates
//
// The user key signs a device certificate for each device. Integers are
// big-endian. Its binary form, version 1, is:
//
//	offset  size  field
//	0       9     magic "kith-cert" (6b 69 74 68 2d 63 65 72 74)
//	9       1     version, 0x01
//	10      32    user public key (ed25519)
//	42      32    device public key (ed25519)
//	74      4     device index, uint32, at most 2147483646
//	78      32    archive recipient (X25519 public key)
//	110     1     name length N, 0 to 64
//	111     N     name, UTF-8, no control characters or bidi overrides
//	111+N   1     role count R, 0 to 8
//	        R ×   role: 1 byte length L (1 to 32), then L bytes of [a-z0-9._-],
//	              no role twice
//	        8     issued, int64 Unix seconds, 1970 to 9999
//	        64    ed25519 signature by the user key
//
// The signature covers "kith/v1/device-cert" || 0x00 || every byte before
// the signature. A certificate is 184 to 512 bytes. Nothing may follow
// the signature, and the encoding is canonical: parsing and marshalling
// again gives the same bytes.
//
// # Revocations
//
// A revocation, version 1, is always 152 bytes:
//
//	offset  size  field
//	0       11    magic "kith-revoke" (6b 69 74 68 2d 72 65 76 6f 6b 65)
//	11      1     version, 0x01
//	12      32    user public key (ed25519)
//	44      32    revoked device's public key (ed25519)
//	76      4     device index, uint32, at most 2147483646
//	80      8     revoked, int64 Unix seconds, 1970 to 9999
//	88      64    ed25519 signature by the user key
//
// The signature covers "kith/v1/revocation" || 0x00 || bytes 0 to 87. The
// record kind is both in the magic and in the signed context, so a
// certificate can never be read, or its signature reused, as a revocation,
// nor the reverse.
package seed
