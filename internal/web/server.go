package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kith-project/kith/internal/control"
)

//go:embed static
var static embed.FS

// Config configures a console.
type Config struct {
	// Backend is what the console drives: the agent's control API.
	Backend control.Backend
	// Logger receives the console's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock of logins, sessions and rules' elapsed time (the
	// agent's). Default time.Now.
	Now func() time.Time
}

// Server is a running console. Create it with [New], serve it with
// [Server.Serve].
type Server struct {
	// Constant after New.
	b     control.Backend
	log   *slog.Logger
	l     net.Listener
	port  string
	host  string // the host of URLs: the bound IP, or 127.0.0.1 for an unspecified one
	now   func() time.Time
	auth  *auth
	hub   *hub
	mux   *http.ServeMux
	files http.Handler
	// decode admits one frame decode at a time (pair.go).
	decode chan struct{}
	// opens admits maxOpens conversations opened with progress (restore.go).
	opens chan struct{}
	shown invites // the invite shown last, for its QR image

	done      chan struct{} // closed when Serve starts shutting down
	closeOnce sync.Once
}

// New makes a console that will serve on l.
func New(cfg Config, l net.Listener) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder exists: a build without it does not compile
	}
	s := &Server{
		b: cfg.Backend, log: cfg.Logger, l: l, now: cfg.Now,
		auth: newAuth(cfg.Now), hub: newHub(),
		files:  http.FileServerFS(sub),
		decode: make(chan struct{}, 1),
		opens:  make(chan struct{}, maxOpens),
		done:   make(chan struct{}),
	}
	ap, _ := netip.ParseAddrPort(l.Addr().String())
	s.port = strconv.Itoa(int(ap.Port()))
	host := ap.Addr().Unmap()
	if !host.IsValid() || host.IsUnspecified() {
		host = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	s.host = host.String()
	if host.Is6() {
		s.host = "[" + s.host + "]"
	}
	s.mux = http.NewServeMux()
	s.routes()
	return s
}

// Addr is the address the console listens on.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Origin is the console's origin, such as http://127.0.0.1:7118.
func (s *Server) Origin() string { return "http://" + s.host + ":" + s.port }

// LoginURL mints a one-time login token and returns the URL that spends
// it, valid for [LoginTTL].
func (s *Server) LoginURL() string {
	return s.Origin() + "/login?token=" + url.QueryEscape(s.auth.newLogin())
}

// Notify tells the open pages that topic changed (TopicPeers, …). It
// never blocks.
func (s *Server) Notify(topic string) { s.hub.notify(topic) }

// Time limits of the server; answers have none, since the event stream
// and a pairing's wait last.
const (
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = time.Minute
	maxHeaderBytes    = 16 << 10
)

// Serve serves until ctx ends, then shuts down, closing the event streams
// and waiting up to five seconds for other requests in flight. It closes
// the listener.
func (s *Server) Serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("web: %w", err)
	case <-ctx.Done():
	}
	s.closeOnce.Do(func() { close(s.done) })
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	<-errc
	return err
}

// cookieName is the session cookie's name. It carries the port: cookies
// are shared by every port of a host, and two agents on one machine must
// not overwrite each other's.
func (s *Server) cookieName() string { return "kith_session_" + s.port }

// securityHeaders go on every response.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; media-src 'self' blob: mediastream:; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(self), microphone=(), geolocation=()",
}

// ServeHTTP checks what every request must pass (see the package
// documentation), then serves it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range securityHeaders {
		h.Set(k, v)
	}
	if !s.hostAllowed(r.Host) {
		s.log.Debug("web: refused a request for another host", "host", r.Host, "path", r.URL.Path)
		http.Error(w, "this console answers only to its own address (see kith web)", http.StatusMisdirectedRequest)
		return
	}
	switch r.URL.Path {
	case "/login":
		s.serveLogin(w, r)
		return
	case "/login.js":
		// The one file served without a session: it holds nothing.
		s.files.ServeHTTP(w, r)
		return
	}
	c, err := r.Cookie(s.cookieName())
	var sess *session
	if err == nil {
		sess, _ = s.auth.session(c.Value)
	}
	if sess == nil {
		s.log.Debug("web: refused a request without a session", "method", r.Method, "path", r.URL.Path)
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, "Not logged in: run \"kith web\" on this device and open the address it prints.")
		return
	}
	if !s.fromHere(r) {
		s.log.Debug("web: refused a request from another site", "method", r.Method, "path", r.URL.Path, "site", r.Header.Get("Sec-Fetch-Site"))
		http.Error(w, "refused: this request comes from another site", http.StatusForbidden)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		h.Set("Cache-Control", "no-store")
		if r.URL.Path != "/api/events" && !sess.keyMatches(r.Header.Get("X-Kith-Key")) {
			s.log.Debug("web: refused a request without the page key", "method", r.Method, "path", r.URL.Path)
			writeJSONError(w, http.StatusForbidden, "refused: the page key (X-Kith-Key) is missing or wrong; run \"kith web\" again")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether a Host header names this server: an IP
// literal or localhost, with the port the server listens on. An IP literal
// cannot be rebound by DNS; any other name could be.
func (s *Server) hostAllowed(host string) bool {
	name, port, err := net.SplitHostPort(host)
	if err != nil || port != s.port {
		return false
	}
	if strings.EqualFold(name, "localhost") {
		return true
	}
	_, err = netip.ParseAddr(name)
	return err == nil && !strings.Contains(name, "%")
}

// fromHere reports whether a request may come from where the browser says
// it does: a state change only from this origin; anything else also from a
// typed address or a bookmark ("none"). Clients that are not browsers send
// neither header.
func (s *Server) fromHere(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	safe := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case site == "" || site == "same-origin":
	case site == "none" && safe:
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && !safe {
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "http" || !s.hostAllowed(u.Host) || u.Host != r.Host {
			return false
		}
	}
	return true
}

// serveLogin is GET /login?token=T: it spends the token, sets the session
// cookie and answers a page whose script (login.js) moves the page key
// from a meta tag to localStorage and goes on to the console. It answers a
// page rather than a redirect because a SameSite=Strict cookie set in a
// navigation from elsewhere (a link file opened by "kith web", another
// application) is not sent on that navigation's redirect.
//
// A login may come from anywhere: its token comes only from the control
// socket, so another site has none to spend.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet {
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	cookie, key, ok := s.auth.login(r.URL.Query().Get("token"))
	if !ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintln(w, "This login link was used already or has expired: run \"kith web\" again.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: cookie, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(SessionTTL / time.Second),
	})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The key is base64url: nothing in it needs escaping in an attribute.
	fmt.Fprintf(w, loginPage, key)
}

// loginPage is the answer to a login, with the page key.
const loginPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kith: logging in</title>
<meta name="kith-key" content="%s"><script src="/login.js"></script></head>
<body><p>Logging in to the kith console…</p></body></html>
`
