// Package transport is the agent's one UDP port: QUIC connections with mutual
// TLS 1.3 between devices, and raw datagrams (STUN, kith heartbeats) on the
// same socket.
//
// One port matters for NAT traversal: the address a peer learns for us through
// STUN or a heartbeat is the address every protocol reaches us on. A
// [Transport] owns that socket (or uses the one given as [Config.PacketConn],
// such as an in-memory one in tests). [Transport.OpenStream] opens a [Stream]
// to a peer over an authenticated [Conn] it shares between callers;
// [Transport.Accept] gives the connections whose streams this side serves;
// [Transport.WriteDatagram] and [Config.Datagram] carry the datagrams that are
// not QUIC.
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
// The dialer opens no stream before it has read exactly that stream, so a
// refused dialer gets [ErrRefused] from [Transport.OpenStream] rather than
// from its first stream. A refused handshake ends with a TLS alert (a QUIC CRYPTO_ERROR)
// carrying no reason text, so the refusing side's reasons stay private.
//
// Connection close codes (QUIC application error codes):
//
//	0x00  closed by this side: unused for Config.IdleLinger, or ClosePeer
//	0x01  the transport is shutting down (Transport.Close)
//	0x02  reserved (was: replaced by a newer connection; no longer sent)
//	0x03  the dialer got no valid greeting in time
//	0x04  too many connections: evicted for a newer one, or refused before the
//	      greeting (the dialer gets ErrBusy)
//	0x05  a stranger's connection, closed by CloseStrangers (the invite that let
//	      it in has expired or been used)
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
// Linux, and never sees a dropped packet. A [Config.PacketConn] that is not a
// *net.UDPConn is filtered the same way, one packet at a time.
// [Config.Datagram] therefore runs on quic-go's read goroutine.
//
// # Relays
//
// A peer that cannot be reached directly is reached through a relay at a
// virtual address (under [RelayPrefix], the session ID in its low 64
// bits): [Transport.AddRelayRoute] routes one, and every packet written to
// it leaves as a relay datagram ([RelayData], 0x30) to the relay; relay
// datagrams from a route's relay are unwrapped and handled as if they came
// from the virtual address, QUIC and datagrams alike. See relay.go for the
// format, the write paths it catches (GSO included) and the MTU.
//
// # Limits
//
// An open invite lets anyone connect, so what a connection costs is bounded:
//
//   - Connections: at most [Config.MaxConns] (256) open, both directions, and
//     at most [Config.MaxStrangerConns] (8) inbound from strangers, the keys
//     [Config.Stranger] calls so. A new connection beyond either cap evicts
//     the stranger idle longest, else the oldest stranger; with no stranger
//     to evict, the newcomer is closed before its greeting. The agent calls
//     [Transport.CloseStrangers] when no invite is open any more.
//   - Handshakes: a token bucket ([Config.HandshakeRate], 20 per second, a
//     burst of 40) admits new inbound handshakes; beyond it quic-go refuses
//     the attempt (CONNECTION_REFUSED) before keeping any state for it. While
//     the bucket is below half, or strangers hold half their cap, a new
//     attempt must first prove its source address with a QUIC Retry, which
//     is stateless, so a flood of Initials from spoofed addresses costs no
//     connection at all.
//   - Streams: a peer may have 32 bidirectional streams open at once on a
//     connection; the dialer opens no unidirectional stream, and the
//     accepting side one, the greeting. Flow-control windows are quic-go's
//     (512 KiB per stream, 768 KiB per connection at first), so a connection
//     whose data nobody reads holds at most 768 KiB. These limits are the
//     same for every peer: QUIC announces them before the client's
//     certificate arrives, so they cannot depend on who the peer is. The
//     agent's stream registry bounds strangers further.
//   - Frames: [ReadFrame] allocates as the payload arrives, 4 KiB first and
//     then doubling, never the length a header announces.
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
// Callers hold streams, not connections. [Transport.OpenStream] opens a
// bidirectional stream to a peer and writes its first byte, the protocol byte
// the peer's dispatcher reads; the caller closes the stream and nothing else.
// All streams to one peer at one address share one connection: a live one,
// whichever side dialed it, is reused, and concurrent OpenStreams that find
// none share one dial (and its error). A stream to the peer at another
// address dials anew without closing the older connection, whose streams go
// on. A new stream reaches the peer's AcceptStream only when its first byte
// is written, which OpenStream does at once.
//
// The transport owns connection lifetime. Every open [Stream], opened or
// accepted, keeps its connection in use until [Stream.Close]; a connection
// this side dialed that no stream uses for [Config.IdleLinger] (2 s by
// default) is closed, so that idle devices exchange no QUIC traffic at all (a
// connection in use sends keep-alives). Only the dialing side closes for
// idleness; the accepting side counts the same streams and leaves the closing
// to the dialer. So that a stream does not start on a connection the peer is
// about to close, an accepted connection is reused only while a stream uses
// it or for half the linger after the last one closed; later OpenStream dials
// its own. [Transport.ClosePeer] closes every connection with a peer at once.
//
// A connection carries streams both ways, so [Transport.Accept] returns the
// connections this transport dialed as well as the accepted ones, each once:
// the peer may reuse a connection we dialed for its streams to us, and
// someone must serve them with [Conn.AcceptStream].
//
// The agent must keep calling [Transport.Accept]: the greeting is sent from
// there, so a Dial to an agent that does not accept times out, and quic-go
// refuses new handshakes once 32 accepted connections are waiting.
package transport
