// Package transport is the agent's one UDP port: QUIC connections with mutual
// TLS 1.3 between devices, and raw datagrams (STUN, kith heartbeats) on the
// same socket.
//
// One port matters for NAT traversal: the address a peer learns for us through
// STUN or a heartbeat is the address every protocol reaches us on. A
// [Transport] owns that socket. [Transport.Dial] and [Transport.Accept] give
// authenticated [Conn]s carrying [Stream]s; [Transport.WriteDatagram] and
// [Config.Datagram] carry the datagrams that are not QUIC.
//
// # Identity
//
// A device is its ed25519 key. Each side of a handshake presents a
// self-signed X.509 certificate made on the fly for its device key; the
// certificate is only an envelope for the key, there is no PKI:
//
//   - subject CN: the lowercase hex of the 32-byte public key (64 characters);
//   - serial: random in 1..2^127; validity: one hour either side of the moment it
//     was made (it is remade when less than half an hour is left);
//   - key usage digitalSignature, extended key usage serverAuth and clientAuth;
//   - signature: Ed25519 by the key itself.
//
// A peer's certificate is accepted when the chain is exactly one certificate
// whose public key is ed25519 and whose self-signature verifies. Its validity
// period and CN are not checked: the TLS 1.3 CertificateVerify message already
// proves the peer holds the key, and the clocks of two devices may disagree.
// The key is then handed to [Config.Authorize], on both sides; the dialing side
// first checks, in constant time, that the key is the one it meant to reach.
// TLS session tickets are disabled, so every connection is a full handshake
// and every connection is authorized afresh. ALPN is [ALPN] ("kith/1"); QUIC
// version 1 only.
//
// # Credentials
//
// A device may carry opaque bytes, [Config.Credential], in its certificate as
// a non-critical extension with OID 2.25.190461725.1998475311.3066.1 (an arc
// under 2.25, free for anyone to use): kith puts the device certificate
// signed by the user key there. When [Config.Authorize] refuses a peer whose
// certificate carries a credential of at most 4096 bytes,
// [Config.AuthorizeCredential] is asked too, so that a device of the same
// user can be accepted before the two have met. The credential is only data
// for that callback: the transport checks nothing in it.
//
// # Admission
//
// In TLS 1.3 the client finishes its handshake before the server has checked
// the client's certificate, so a completed QUIC handshake does not tell the
// dialer it was accepted. The accepting side therefore opens the connection's
// first unidirectional stream as soon as it has authorized the dialer, writes
// one byte and closes it:
//
//	offset  size  field
//	0       1     greeting: 0x01 (kith/1, accepted)
//
// [Transport.Dial] returns only after reading exactly that stream, so a
// refused dialer gets [ErrRefused] from Dial rather than from its first
// stream. A refused handshake ends with a TLS alert (a QUIC CRYPTO_ERROR)
// carrying no reason text, so the refusing side's reasons stay private.
//
// Connection close codes (QUIC application error codes):
//
//	0x00  closed by the application (Conn.Close)
//	0x01  the transport is shutting down (Transport.Close)
//	0x02  replaced by a newer connection to the same peer
//	0x03  the dialer got no valid greeting in time
//
// # Demultiplexing
//
// Every packet read from the socket is looked at before QUIC sees it. First
// [Config.DropSource] is asked about the source address; a true answer drops
// the packet, QUIC or not, without any reply. Then the first byte decides, as
// [Classify] does (compare RFC 7983 and RFC 9443):
//
//	first byte   kind         handling
//	0x00..0x03   KindSTUN     STUN when bytes 4..8 hold the magic cookie
//	                          0x2112A442 and bytes 2..4 (big-endian) equal the
//	                          length after the 20-byte header, a multiple of 4;
//	                          otherwise KindGarbage
//	0x04..0x3f   KindKith     a kith datagram; byte 0 is its type
//	0x40..0x7f   KindQUIC     QUIC short header (fixed bit set)
//	0x80..0xbf   KindGarbage  long header without the fixed bit: kith speaks
//	                          QUIC v1 only and never needs version negotiation
//	0xc0..0xff   KindQUIC     QUIC long header
//	(empty)      KindGarbage
//
// STUN and kith datagrams go to [Config.Datagram]; QUIC packets go to
// quic-go; garbage is counted and dropped. Nothing is ever sent in answer to
// garbage: the transport sends no version negotiation packets and no stateless
// resets, and QUIC Initial packets that do not decrypt are dropped by quic-go.
// The filter is the socket quic-go reads from: it wraps the UDP socket and
// reads in batches itself, so quic-go keeps its batched reads, ECN and GSO on
// Linux, and never sees a dropped packet. [Config.Datagram] therefore runs on
// quic-go's read goroutine.
//
// # Frames
//
// [WriteFrame] and [ReadFrame] delimit messages on a stream:
//
//	offset  size  field
//	0       4     length n, unsigned big-endian, at most MaxFrameSize (1 MiB)
//	4       n     payload
//
// # Connections and streams
//
// [Transport.Dial] keeps the live connection it made to each peer and returns
// it again for the same peer and address, so callers dial whenever they need a
// stream and leave the connection open; [Conn.Close] tears it down for every
// user. A connection to a peer at a new address replaces the old one. Either
// side may open streams; by convention the dialing side opens them and the
// accepting side serves them with [Conn.AcceptStream]. A new stream reaches the peer's AcceptStream only when
// the first byte is written on it. Connections send keep-alives, so a
// connection lives as long as the peer answers.
//
// The agent must keep calling [Transport.Accept]: the greeting is sent from
// there, so a Dial to an agent that does not accept times out, and quic-go
// refuses new handshakes once 32 accepted connections are waiting.
package transport
