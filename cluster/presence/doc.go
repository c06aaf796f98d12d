// Package presence keeps a user's devices, and their friends' devices, in
// touch with each other with no server in between: every device tracks
// where every device it knows can be reached, whether it is online, how far
// its clock is from ours, and tells them at once when its own address
// changes (DESIGN §5).
//
// Presence is a library with no socket of its own. The agent owns the one
// UDP port; it hands [Presence.HandleDatagram] every datagram that is not
// QUIC (kith datagrams, first byte 0x04..0x3f, and STUN), gives
// [Presence.Admit] to the transport to drop packets before any work, and
// calls [Presence.Observed] when an authenticated QUIC connection arrives.
// Presence sends through [Config.Send] and reads and writes addresses
// through the agent's address book, [Book].
//
// Devices are named by their [seed.DevicePublic] everywhere in the API.
// What presence notices (a peer online, offline or moved, our own address
// changed) it also reports as [Event]s to whoever [Presence.Subscribe]s;
// see there for what a slow subscriber loses. [Presence.Run] is
// [Presence.Step] in a loop, sleeping until [Presence.NextDue]; package
// presencetest drives many presences through those two on a simulated
// network and clock, for tests.
//
// # Heartbeats
//
// At random intervals, uniform in [T/2, 3T/2] (T is [Config.Interval],
// default 15 s), a device sends a signed heartbeat to one of the devices it
// knows, own or a friend's. The peer is drawn at random from those not yet
// drawn in the current round, a round being a random permutation of the
// peers: each choice is random, yet every peer hears from us at least once
// every 2n−1 heartbeats with n peers, so none is forgotten by chance.
// [Presence.Run] greets every known peer at once when it starts, so that a
// restarted device is found again without waiting.
//
// The peer answers with a reply that carries the address it saw the
// heartbeat come from (so that a device behind a NAT learns its public
// address) and the times of an NTP exchange: t1 the heartbeat's send time
// by the sender's clock, t2 its receive time and t3 the reply's send time
// by the replier's clock; t4 is the reply's receive time by the sender's.
// The sender computes
//
//	offset = ((t2 − t1) + (t3 − t4)) / 2   (the peer's clock minus ours)
//	rtt    = (t4 − t1) − (t3 − t2)
//
// and keeps, per peer, a smoothed RTT (as TCP's SRTT, gain 1/8) and the
// offset of the sample with the lowest RTT among the last eight (as NTP's
// clock filter: its error is at most half its RTT).
//
// A peer is online while its last authenticated packet is at most
// OnlineIntervals (3) rounds old, a round being n·T with n peers, and no
// two of the heartbeats we sent it since went unanswered for max(T/2, 2 s).
// With one peer that is the "heard from within 3T" rule; with more, each
// pair talks less often, and unanswered heartbeats are what notice a
// departure quickly.
//
// # Freshness
//
// Every datagram carries the sender's sequence number, one counter for all
// it sends, started at a random place in [2^61, 2^62) each time the
// sender starts (no clock is trusted to move forward). A receiver keeps, per
// sender, the highest number accepted and a 64-wide window below it (as
// IPsec and WireGuard do): a number seen before is dropped, before its
// signature is checked.
//
// A number older than the window, more than 2^32 above it, or from a
// sender we have no window for yet (as after we restarted) is unsynced:
// what a restarted sender sends, and also what a replay from another run,
// or from before our restart, looks like. An unsynced heartbeat is
// answered (a restarted sender needs our echo) and believed in nothing,
// and we send a heartbeat of our own to where it came from, at most one
// per peer every min(T/4, 1 s) (in quiet mode that admits its address
// for a while, as any heartbeat we send does). The reply to that
// heartbeat, whose echo only the real sender can sign, restarts the window
// at the reply's number; a reply a little below the window (overtaken on
// the way) is taken and leaves the window as it is. So a replay moves
// nobody however young it is, nothing about replay windows needs to be
// stored, and a sender whose clock went back is resynced within a round
// trip instead of refused as a replay. (Two runs of one sender start
// within 2^32 of each other with probability about 2^-28; only then could
// packets of the older run pass the newer window, and they would still
// have to pass the clock check below.)
//
// A heartbeat whose t1 is more than MaxClockSkew (2 min) from the
// receiver's clock, corrected by the offset measured for the sender, is
// stale. A stale heartbeat is answered, so that a sender with a badly
// skewed clock can still measure it, but believed in nothing: a refused
// datagram changes no address and no last-seen time. A reply is accepted
// only as the answer to a heartbeat we sent that peer and have not seen
// answered (its sequence number and t1 echoed); that proves it fresh
// without trusting any clock. A clock sample whose offset is more than
// 1 s plus its RTT from the one in use means a clock was stepped: the
// older samples are forgotten, so a peer whose clock jumped is measured
// again at once rather than refused as stale for eight more samples.
//
// Every signature covers the recipient's device key too (it is not sent),
// so a datagram made for one device is worthless if replayed to another.
//
// # What a stranger costs
//
// The sender of a datagram is looked up in the book before its signature
// is checked: a datagram from a sender we do not know costs a map lookup,
// never an Ed25519 verification. But anyone can write a known device's key
// as the sender, so verifications are paid from token buckets, and a
// signature that verifies gives its token back: real traffic never drains
// a bucket, only forgeries do, and from an empty bucket datagrams are
// dropped unverified. Each known device has one bucket for datagrams from
// the address the book holds for it (16 at once, 8 a second) and one for
// every other address (8, 4 a second); the latter are also drawn from one
// bucket shared by all devices (64, 64 a second). A flood that claims a
// friend's key from anywhere but the friend's current address therefore
// costs at most 4 verifications a second for that friend and 64 in all,
// and the friend's own packets keep their bucket. An attacker who can
// spoof the friend's current address can drain that bucket too and delay
// it; a friend that roams during such a flood is followed once the flood
// ends, or at once by its QUIC connections ([Presence.Observed]).
//
// Debug log lines are limited to 5 at once and 2 a second per message
// (internal/ratelog, which the agent also puts in front of its own and the
// transport's lines); the next line that passes counts those suppressed.
//
// # Address records
//
// A record {device, address, version} says where a device is, signed by
// that device. The version is a counter the device bumps each time its
// address changes; it goes on from the last version the book saved
// ([VersionBook]; the agent keeps it in its store), or starts from the
// Unix-millisecond clock when there is none, so that it survives restarts
// whatever the clock does. A record moves a device's address only if it
// is signed by that device's key and its version is newer than the one
// held (the book keeps the version, [PeerInfo.Version], so a restart
// forgets nothing): a forged, replayed or older record never moves anyone.
//
// Each heartbeat and reply gossips up to three records: the sender's own,
// always, then records it holds for other devices, forwarded as the bytes
// their devices signed. A friend is sent only records of the sender's own
// devices (which it knows from pairing), never of other friends, so that
// friends do not learn each other's whereabouts through us.
//
// An authenticated heartbeat, reply or address update from a new source
// address moves its sender there at once, and so does an authenticated
// QUIC connection ([Presence.Observed]), as WireGuard roams. (An on-path
// attacker who races a fresh packet from another address can move a peer
// until its next packet; so can one in WireGuard.) The sender's own record
// in such a packet updates the version held, not the address: where a
// packet came from is better evidence than where its sender thinks it is.
//
// # Noticing our own address change
//
// A device learns that its address changed from three sources:
//   - its interface addresses ([Config.LocalAddrs], polled at every
//     heartbeat and at least every min(T/4, 5 s)) changing;
//   - a STUN server's mapping for it changing;
//   - a peer reporting a different observed address than that peer
//     reported before. Different peers may well see different addresses
//     (behind some NATs each sees another port, and peers on the LAN see
//     the LAN address), so only a change in what one peer sees counts, and
//     an observed address that is one of our interfaces' is no news.
//
// A reported address is believed only when it is confirmed: reported,
// within the last 30 T, by two sources (two peers, or a peer and a STUN
// server; a friend's replies and its STUN answers are one source), or by
// a STUN server the user configured. One lying friend therefore decides
// nothing we advertise. Behind a NAT that gives each peer another port, no
// address is confirmed and we advertise an interface address; peers follow
// us anyway, by where our packets come from. A change in what one source
// sees still makes us tell every peer at once (below): it is our packets,
// from our socket, that move us in their books, whatever our record says.
//
// The address we advertise in our record is the newest confirmed public
// address unless our interfaces changed since, else our best interface
// address (routable before loopback, IPv4 before IPv6, never link-local).
// When it changes we sign a new record with a higher version. On any
// change we send an address update, a heartbeat of type 0x12 carrying our
// record, to every known peer at once, and ask STUN again.
//
// # STUN
//
// Every agent answers STUN binding requests (RFC 5389) on its port with
// XOR-MAPPED-ADDRESS and FINGERPRINT. It asks the configured servers
// ([Config.STUNServers]) and up to two friends' agents for its own public
// address when it starts, every STUNIntervals (10) T, and after a change;
// only answers to our own transactions, from the address asked, are
// taken. [Presence.PublicAddrs] lists the confirmed addresses that STUN
// and peers reported in the last 30 T.
//
// # Quiet mode
//
// In quiet mode ([Config.Quiet]) packets from unknown addresses are dropped
// without answer, so that the port looks closed to strangers, except
// inside short windows that only the user's devices and friends can
// predict. Known peers' addresses are always admitted, and so, for
// OnlineIntervals·T (at least 10 s), are addresses we sent a heartbeat or
// a STUN request to; answering someone opens nothing.
//
// The schedule, from the user's 32-byte window secret (DESIGN §2):
//
//	slot   n = floor(unix_seconds / 60)
//	mac      = HMAC-SHA256(secret, "kith/v1/quiet" || uint64_be(n))
//	offset   = uint64_be(mac[0:8]) mod 56            (seconds, 0..55)
//	window   = [60·n + offset, 60·n + offset + 5)    (unix seconds)
//
// One 5-second window in every minute, at a place that looks random to
// anyone without the secret; see [WindowOpen] and [NextWindow]. Friends
// hold the secret from pairing, and own devices share it, so a device
// whose peer seems gone (offline) heartbeats it in the middle of each of
// the peer's windows, by the peer's clock as last measured, besides the
// regular heartbeats: a quiet peer that does not know our new address
// lets that one in, and the authenticated heartbeat moves us in its book.
// Windows need clocks within about ±2 s of each other, corrected by the
// measured offsets, which kith status shows.
//
// # Wire format
//
// All integers are big-endian; times are Unix nanoseconds as int64. An
// address is 18 bytes: the IPv6 address (an IPv4 address as IPv4-mapped
// ::ffff:a.b.c.d) in 16 bytes, then the port in 2. The unspecified
// address and port 0 are refused.
//
// An address record, 122 bytes:
//
//	 0  32  device public key (Ed25519)
//	32  18  address
//	50   8  version
//	58  64  signature by the device over "kith/v1/addr\x00" || bytes 0..58
//
// A heartbeat (type 0x10) or an address update (type 0x12), 115 + 122·k
// bytes:
//
//	 0   1  type
//	 1   1  wire version, 1
//	 2  32  sender device public key
//	34   8  sequence number
//	42   8  t1, send time by the sender's clock
//	50   1  k, the number of records, 0..3
//	51  122·k  records
//	..  64  signature by the sender over
//	        context || recipient device public key || every byte before it
//
// with context "kith/v1/heartbeat\x00" for 0x10 and
// "kith/v1/addr-update\x00" for 0x12. An address update is handled and
// answered exactly as a heartbeat; its type says why it was sent.
//
// A reply (type 0x11), 157 + 122·k bytes:
//
//	 0   1  type, 0x11
//	 1   1  wire version, 1
//	 2  32  replier device public key
//	34   8  the replier's sequence number
//	42   8  the heartbeat's sequence number, echoed
//	50   8  t1, echoed
//	58   8  t2, heartbeat receive time by the replier's clock
//	66   8  t3, reply send time by the replier's clock
//	74  18  the heartbeat's source address as the replier saw it
//	92   1  k, 0..3
//	93  122·k  records
//	..  64  signature over "kith/v1/heartbeat-reply\x00" ||
//	        recipient device public key || every byte before it
//
// The bytes are those of the first presence of wire version 1; only how
// sequence numbers are chosen and judged changed (see Freshness). Earlier
// kiths started theirs at the Unix-nanosecond clock, which lies below
// 2^61 until 2043, so they take ours as newer and we resync to theirs.
//
// A datagram of any other length, with more than three records, an
// unknown type or another wire version is dropped. With one record a
// heartbeat is 237 bytes and its reply 279: at the default T = 15 s that
// is 34 bytes per second per device (three records each: 67).
package presence
