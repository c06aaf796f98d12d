package portmap

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIGD is a UPnP Internet Gateway Device on HTTP loopback: a device
// description with one WANIPConnection:1 service, and its SOAP control.
type fakeIGD struct {
	srv *httptest.Server

	mu        sync.Mutex
	permanent bool // refuses leases other than 0 (error 725)
	huge      bool // answers with an endless body
	calls     []string
	mapped    map[string]string // external port → "client:port lease"
}

const igdDescription = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType><friendlyName>fake</friendlyName><UDN>uuid:1</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><UDN>uuid:2</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><UDN>uuid:3</UDN>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><controlURL>/ctl</controlURL><eventSubURL>/evt</eventSubURL><SCPDURL>/scpd.xml</SCPDURL>
</service></serviceList></device></deviceList></device></deviceList></device></root>`

func newFakeIGD(t *testing.T) *fakeIGD {
	f := &fakeIGD{mapped: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/desc.xml", func(w http.ResponseWriter, r *http.Request) {
		if f.isHuge() {
			endless(w)
			return
		}
		io.WriteString(w, igdDescription)
	})
	mux.HandleFunc("/ctl", f.control)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIGD) isHuge() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.huge
}

// endless writes 64 MiB of an XML comment that never ends.
func endless(w io.Writer) {
	io.WriteString(w, "<?xml version=\"1.0\"?><root><!--")
	chunk := strings.Repeat("x", 1<<16)
	for range 1024 {
		if _, err := io.WriteString(w, chunk); err != nil {
			return
		}
	}
}

var soapArg = regexp.MustCompile(`<(New\w+)>([^<]*)</New\w+>`)

func (f *fakeIGD) control(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	action := r.Header.Get("SOAPACTION")
	action = strings.Trim(action[strings.Index(action, "#")+1:], `"`)
	args := map[string]string{}
	for _, m := range soapArg.FindAllStringSubmatch(string(body), -1) {
		args[m[1]] = m[2]
	}
	f.mu.Lock()
	f.calls = append(f.calls, action+" "+args["NewExternalPort"]+" "+args["NewLeaseDuration"])
	permanent, huge := f.permanent, f.huge
	out := ""
	fault := 0
	switch action {
	case "GetExternalIPAddress":
		out = "<NewExternalIPAddress>203.0.113.8</NewExternalIPAddress>"
	case "AddPortMapping":
		if permanent && args["NewLeaseDuration"] != "0" {
			fault = 725
		} else {
			f.mapped[args["NewExternalPort"]] = args["NewInternalClient"] + ":" + args["NewInternalPort"] + " " + args["NewLeaseDuration"]
		}
	case "DeletePortMapping":
		delete(f.mapped, args["NewExternalPort"])
	default:
		fault = 401
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	if huge {
		endless(w)
		return
	}
	if fault != 0 {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>refused</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, fault)
		return
	}
	fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">%s</u:%sResponse></s:Body></s:Envelope>`, action, out, action)
}

func (f *fakeIGD) state() (calls []string, mapped map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]string{}
	for k, v := range f.mapped {
		m[k] = v
	}
	return append([]string(nil), f.calls...), m
}

// noNATPMP is a gateway address where nothing answers NAT-PMP: its
// requests are refused at once (ICMP port unreachable on loopback).
var noNATPMP = netip.MustParseAddr("127.53.52.1")

func startUPnP(t *testing.T, f *fakeIGD, cfg Config) (*Mapper, func()) {
	t.Helper()
	cfg.upnpRoot = f.srv.URL + "/desc.xml"
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.cfg.Gateway = noNATPMP
	return m, runMapper(t, m)
}

// A router that speaks only UPnP: NAT-PMP fails, the UPnP mapping is made
// for this host's address and the port, and deleted at stop.
func TestUPnPMapping(t *testing.T) {
	f := newFakeIGD(t)
	m, stop := startUPnP(t, f, Config{Port: 4343, Lifetime: time.Hour})
	waitFor(t, "mapped over UPnP", func() bool { ext, ok := m.External(); return ok && ext.String() == "203.0.113.8:4343" })
	if st := m.Status(); st.Protocol != ProtoUPnP || st.Lifetime != time.Hour {
		t.Fatalf("status %+v", st)
	}
	_, mapped := f.state()
	if mapped["4343"] != "127.0.0.1:4343 3600" {
		t.Fatalf("the router holds %v", mapped)
	}
	stop()
	calls, mapped := f.state()
	if len(mapped) != 0 || !strings.HasPrefix(calls[len(calls)-1], "DeletePortMapping 4343") {
		t.Fatalf("after stop the router holds %v; calls %v", mapped, calls)
	}
}

// A router that grants only permanent mappings (UPnP error 725) gets a
// request for lease 0.
func TestUPnPPermanentOnly(t *testing.T) {
	f := newFakeIGD(t)
	f.permanent = true
	m, _ := startUPnP(t, f, Config{Port: 4344})
	waitFor(t, "mapped", func() bool { _, ok := m.External(); return ok })
	if _, mapped := f.state(); mapped["4344"] != "127.0.0.1:4344 0" {
		t.Fatalf("the router holds %v", mapped)
	}
	if st := m.Status(); st.Lifetime != 0 || !st.Expires.After(time.Now()) {
		t.Fatalf("status %+v", st)
	}
}

// A router whose answers never end is read no further than maxUPnPBody:
// no mapping, an error, and the mapper still stops.
func TestUPnPEndlessAnswer(t *testing.T) {
	f := newFakeIGD(t)
	f.huge = true
	m, stop := startUPnP(t, f, Config{Port: 4345, NoUPnP: false})
	waitFor(t, "the failure recorded", func() bool { return strings.Contains(m.Status().Err, "upnp: ") })
	if _, ok := m.External(); ok {
		t.Fatal("mapped on an endless answer")
	}
	stop()
}
