package portmap

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/httpu"
	"github.com/huin/goupnp/soap"
	"github.com/huin/goupnp/ssdp"
)

// ProtoUPnP names UPnP IGD in Status.
const ProtoUPnP = "upnp"

// UPnP IGD (github.com/huin/goupnp): an SSDP search for an Internet
// Gateway Device, whose description must be served by the default gateway
// itself (any other device on the LAN may answer a search, and is
// ignored), then AddPortMapping on its WANIPConnection (version 2 or 1)
// or WANPPPConnection service. What the router sends is read at most
// maxUPnPBody bytes at a time.
const (
	igdSearchTarget = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	maxUPnPBody     = 256 << 10
	ssdpWait        = 2 * time.Second
	upnpDescription = "kith"
	// upnpPermanentRenew is how often a permanent mapping (a router that
	// grants only lease 0) is asked for again.
	upnpPermanentRenew = 20 * time.Minute
	// errOnlyPermanentLeases is the UPnP error of a router that grants
	// only permanent mappings (lease 0).
	errOnlyPermanentLeases = 725
)

// igd is the part of a WAN connection service that maps ports.
type igd interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, lease uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

// upnpMap asks the gateway gw for the mapping over UPnP IGD.
func (m *Mapper) upnpMap(gw netip.Addr) (*mapping, error) {
	loc, err := m.igdLocation(gw)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	c, err := igdService(ctx, loc)
	if err != nil {
		return nil, err
	}
	local, err := localAddrToward(loc)
	if err != nil {
		return nil, err
	}
	extStr, err := c.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking for the external address: %w", err)
	}
	ext, err := netip.ParseAddr(extStr)
	if err != nil || !ext.Is4() || ext.IsUnspecified() || ext.IsLoopback() {
		return nil, fmt.Errorf("the router's external address %q is not a usable IPv4 address", clipped(extStr))
	}
	port := m.cfg.Port
	lease := uint32(m.cfg.Lifetime / time.Second)
	err = c.AddPortMappingCtx(ctx, "", port, "UDP", port, local.String(), true, upnpDescription, lease)
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) && fault.Detail.UPnPError.Errorcode == errOnlyPermanentLeases {
		lease = 0
		err = c.AddPortMappingCtx(ctx, "", port, "UDP", port, local.String(), true, upnpDescription, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("asking to map UDP port %d: %w", port, err)
	}
	mp := &mapping{proto: ProtoUPnP, external: netip.AddrPortFrom(ext, port), lifetime: time.Duration(lease) * time.Second, renew: upnpPermanentRenew}
	if lease > 0 {
		mp.renew = max(mp.lifetime/2, minRenew)
	}
	timeout := m.cfg.Timeout
	mp.remove = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return c.DeletePortMappingCtx(ctx, "", port, "UDP")
	}
	return mp, nil
}

// igdLocation finds the URL of the gateway's IGD description: the test's
// override, or the answer to an SSDP search that comes from gw.
// The search listens for ssdpWait: SSDP answers come within the MX
// seconds the search names, and the search waits until its context ends.
func (m *Mapper) igdLocation(gw netip.Addr) (*url.URL, error) {
	if m.cfg.upnpRoot != "" {
		return url.Parse(m.cfg.upnpRoot)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ssdpWait)
	defer cancel()
	hc, err := httpu.NewHTTPUClient()
	if err != nil {
		return nil, fmt.Errorf("opening an SSDP socket: %w", err)
	}
	defer hc.Close()
	resps, err := ssdp.RawSearch(ctx, hc, igdSearchTarget, 2)
	if err != nil {
		return nil, fmt.Errorf("searching for a UPnP gateway: %w", err)
	}
	for _, r := range resps {
		r.Body.Close()
		loc, err := r.Location()
		if err != nil {
			continue
		}
		if ip, err := netip.ParseAddr(loc.Hostname()); err == nil && ip.Unmap() == gw {
			return loc, nil
		}
	}
	return nil, fmt.Errorf("no UPnP gateway answered from %s (%d other answers)", gw, len(resps))
}

// igdService fetches the description at loc, bounded, and returns its
// first WAN connection service.
func igdService(ctx context.Context, loc *url.URL) (igd, error) {
	root, err := fetchRoot(ctx, loc)
	if err != nil {
		return nil, err
	}
	limit := func(sc *goupnp.ServiceClient) { sc.SOAPClient.HTTPClient = http.Client{Transport: limitedTransport{}} }
	if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		limit(&cs[0].ServiceClient)
		return cs[0], nil
	}
	if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		limit(&cs[0].ServiceClient)
		return cs[0], nil
	}
	if cs, err := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		limit(&cs[0].ServiceClient)
		return cs[0], nil
	}
	return nil, fmt.Errorf("the gateway at %s offers no WAN connection service", loc.Host)
}

// fetchRoot reads and decodes the device description at loc, at most
// maxUPnPBody bytes of it.
func fetchRoot(ctx context.Context, loc *url.URL) (*goupnp.RootDevice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: limitedTransport{}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the gateway's description: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the gateway's description: %s", resp.Status)
	}
	root := new(goupnp.RootDevice)
	dec := xml.NewDecoder(resp.Body)
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	dec.CharsetReader = goupnp.CharsetReaderDefault
	if err := dec.Decode(root); err != nil {
		return nil, fmt.Errorf("decoding the gateway's description: %w", err)
	}
	base := loc
	if root.URLBaseStr != "" {
		if base, err = url.Parse(root.URLBaseStr); err != nil {
			return nil, fmt.Errorf("the gateway's URLBase: %w", err)
		}
	}
	root.SetURLBase(base)
	return root, nil
}

// localAddrToward is this host's address on the route to loc's host: the
// internal client of the mapping.
func localAddrToward(loc *url.URL) (netip.Addr, error) {
	port := loc.Port()
	if port == "" {
		port = "80"
	}
	c, err := net.Dial("udp", net.JoinHostPort(loc.Hostname(), port))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding our address toward the gateway: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// limitedTransport cuts every response body at maxUPnPBody bytes, so that
// a router's answer cannot grow our memory without bound.
type limitedTransport struct{}

func (limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{io.LimitReader(resp.Body, maxUPnPBody), resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// clipped shortens what a router said for an error message.
func clipped(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
