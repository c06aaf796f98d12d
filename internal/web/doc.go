// Package web is the agent's web console: a few embedded pages, served on
// a loopback TCP port, that do for people what the command line does —
// pairing by camera, devices and friends, conversations and archives —
// through the same [control.Backend] the control socket serves.
//
// # Logging in
//
// "kith web" asks the agent over the control socket for a login URL
// ([Server.LoginURL]). The URL carries a one-time token, valid for
// [LoginTTL]; opening it gives the browser a session: an HttpOnly,
// SameSite=Strict cookie, and a page key that the login's answer hands to
// its script and that the page keeps in its origin's localStorage. Every API request carries the key in the
// X-Kith-Key header, and it doubles as the CSRF token: a request that
// changes anything without it is refused.
//
// Cookies are not isolated by port: a browser sends 127.0.0.1's cookies to
// every port of 127.0.0.1. The page key is, since localStorage belongs to
// an origin, port included; so a cookie that leaked to another local
// server reads nothing but the names of the event topics.
//
// # What every request passes
//
//   - The Host header names this server: an IP literal or "localhost" with
//     the port it listens on. A name that resolves here by DNS rebinding is
//     refused (421).
//   - The session cookie (401 without it), except for /login and the
//     script of its answer, /login.js.
//   - For /api/ other than the event stream: the page key (403 without it).
//   - For a state change (POST): the key, and, when the browser says where
//     the request comes from, Sec-Fetch-Site same-origin and an Origin that
//     is this server's (403 otherwise).
//
// No response carries CORS headers, so another origin's script cannot read
// any, and a cross-origin request with the custom header needs a preflight
// that this server never grants. Every response carries a Content Security
// Policy (default-src 'self', no inline script, frame-ancestors 'none'),
// nosniff, no-referrer and same-origin resource and opener policies.
//
// # Live updates
//
// The page opens one server-sent event stream (/api/events). An event names
// a topic that changed — peers, friends, pair, conv, archive — and
// the page fetches what it shows again; nothing polls. [Server.Notify] is
// how the agent says that something changed.
//
// Opening a thread (GET /api/conv/{id}/open) is a stream of its own, read
// with fetch so that it carries the page key: the progress of an archived
// conversation's blobs as they arrive, which the page shows as a bar,
// then the view (restore.go).
//
// # Pairing by camera
//
// The page shows this device's invite as a QR code (PNG from package
// pairing) and makes a new one before it expires. It opens the camera with
// getUserMedia, draws frames on a canvas and posts them as JPEG to
// /api/pair/frame, where the agent decodes them with pairing.DecodeImage;
// the page needs no QR library. A photo upload and a pasted KITH code are
// the fallbacks.
//
// getUserMedia needs a secure context, which http://127.0.0.1 and
// http://localhost are; on another address (kith run --web
// 192.168.1.5:7118) the camera is unavailable and the fallbacks remain.
package web
