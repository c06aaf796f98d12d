// Package natlab builds, for one test, a small "internet" of Linux network
// namespaces with home routers that do NAT, so that kith can be tested
// across real address translation (issue #10).
//
// # Topology
//
// Every lab has one "internet" namespace holding a bridge. Each router
// ([Lab.Router]) is a namespace with a WAN interface on that bridge, at an
// address of 198.18.0.0/24 (RFC 2544's benchmarking range, which no real
// network uses), and a LAN bridge at 10.0.N.1/24. Hosts behind a router
// ([Lab.Host]) sit on its LAN bridge at 10.0.N.2, .3, …, with the router as
// their default gateway, so two hosts behind one router share one LAN
// segment on which broadcast and multicast work. Public hosts
// ([Lab.Public]) sit on the internet bridge with an address of their own.
// Routers and public hosts route everything else to the internet
// namespace's own address, 198.18.0.254, which forwards nothing: a packet
// to an address nobody in the lab has (another LAN's private address, say)
// vanishes without an answer, as on the real internet.
//
//	hA (10.0.1.2) ─┐                                 ┌─ hB (10.0.2.2)
//	hA2 (10.0.1.3)─┴ lan [rA] wan ── internet ── wan [rB] lan ┘
//	                 198.18.0.1   bridge   198.18.0.2
//	                                │
//	                        pub (198.18.0.100)
//
// A router masquerades what leaves its WAN, and drops every packet that
// arrives on the WAN and is not part of a connection that conntrack
// already knows (established or related): unsolicited inbound is dropped,
// as a home router does. Linux's masquerade keeps a flow's source port
// when it can, so by default a router is port-preserving with an
// endpoint-independent mapping; [Symmetric] makes it pick a random port per
// flow (nftables' "masquerade random"), a different mapping per
// destination. [Router.SetUDPTimeouts] sets the router's conntrack UDP
// timeouts, and [Lab.Renumber] gives its WAN a new address and flushes its
// conntrack table, as an ISP's new lease does.
//
// # Running things inside
//
// [Host.Prefix] is the command prefix ("ip netns exec NS") that runs a
// program inside a host's namespace, which the e2e harness's
// Device.Prefix takes; [Host.Command] builds such a command; and
// [Host.ListenUDP] opens a UDP socket inside the namespace from the test
// process itself, for small probes.
//
// # Requirements and cleanup
//
// [Require] skips the test, naming what is missing, unless the process is
// root, ip, nft and conntrack are installed, and namespaces with nftables
// work. Every namespace's name begins with a prefix unique to the lab (it
// holds the process ID and a counter), so labs of parallel tests and test
// processes never collide. When the test ends, whatever happened, the
// lab's cleanup kills every process left in its namespaces and deletes
// them, which deletes their interfaces too. The labs of a test process
// that was killed before its cleanups ran are removed by the next
// Require: their names hold a process ID that no longer exists.
package natlab
