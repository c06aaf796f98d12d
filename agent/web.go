package agent

import (
	"context"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/internal/web"
)

// The web console (package internal/web) runs inside the agent when
// Config.WebListener is set: it drives the same control API as the socket,
// in process, and hears of changes from presence and the address book.

// newWeb makes the console on Config.WebListener, if any. Called by New
// once the book and presence exist.
func (a *Agent) newWeb() {
	if a.cfg.WebListener == nil {
		return
	}
	a.web = web.New(web.Config{Backend: controlAPI{a}, Logger: a.log.With("service", "web"), Now: a.cfg.Now}, a.cfg.WebListener)
	prev := a.book.onChange
	a.book.onChange = func() {
		if prev != nil {
			prev()
		}
		a.web.Notify(web.TopicFriends)
	}
}

// webConvChanged tells the console's pages that a conversation changed
// (the Book's OnChange, conv.go); nothing without a console.
func (a *Agent) webConvChanged() {
	if a.web != nil {
		a.web.Notify(web.TopicConv)
	}
}

// serveWeb serves the console until ctx ends, and tells its pages when
// presence sees a device come, go or move.
func (a *Agent) serveWeb(ctx context.Context) error {
	events, cancel := a.presence.Subscribe(16)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.web.Serve(ctx) }()
	for {
		select {
		case err := <-done:
			return err
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			a.web.Notify(web.TopicPeers)
		}
	}
}

// WebLogin answers "kith web" (control.RouteWebLogin).
func (c controlAPI) WebLogin(context.Context) (control.WebLoginResult, error) {
	if c.a.web == nil {
		return control.WebLoginResult{}, &control.Error{Kind: control.KindFailed,
			Message: "this agent serves no web console: it was started with --web off"}
	}
	return control.WebLoginResult{URL: c.a.web.LoginURL(), ExpiresIn: int(web.LoginTTL / time.Second)}, nil
}
