package agent

import (
	"context"
	"net"
	"syscall"
)

// listenUDP binds the agent's UDP socket at addr ("host:port") with
// SO_BROADCAST set, so that it may send LAN beacons to broadcast
// addresses. Where the option cannot be set the socket is still returned:
// beacons to broadcast addresses then fail, and are logged at debug level.
func listenUDP(addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(setBroadcast)
	}}
	return lc.ListenPacket(context.Background(), "udp", addr)
}
