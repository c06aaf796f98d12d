package control

import (
	"context"
	"net/http"
)

// The web console (package internal/web) is served by the agent on a
// loopback TCP port; "kith web" asks the agent, over this socket, for a
// URL that logs a browser in once.

// WebBackend is the part of a backend that serves the web console. A
// [Backend] that is not one, or that runs no console, answers
// [RouteWebLogin] with an error of kind [KindFailed].
type WebBackend interface {
	// WebLogin returns a URL carrying a fresh one-time login token.
	WebLogin(ctx context.Context) (WebLoginResult, error)
}

// WebLoginResult is what "kith web" prints: the console's address with a
// one-time login token, valid for ExpiresIn seconds.
type WebLoginResult struct {
	URL       string `json:"url"`
	ExpiresIn int    `json:"expires_in"`
}

// registerWeb serves the WebBackend route from b.
func registerWeb(mux *http.ServeMux, b Backend) {
	type none struct{}
	wb, ok := b.(WebBackend)
	mux.Handle(RouteWebLogin, handle(func(ctx context.Context, _ *none) (WebLoginResult, error) {
		if !ok {
			return WebLoginResult{}, &Error{Kind: KindFailed, Message: "this agent serves no web console: start it with \"kith run --web 127.0.0.1:7118\""}
		}
		return wb.WebLogin(ctx)
	}))
}

// WebLogin asks the agent for a one-time login URL of its web console.
func (c *Client) WebLogin(ctx context.Context) (WebLoginResult, error) {
	var res WebLoginResult
	err := c.do(ctx, RouteWebLogin, nil, &res)
	return res, err
}
