package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Backend is what serves the API: the agent. It has one method per route.
// A method's error reaches the client as an [Error]: return one to choose
// its kind (bad input, not found); any other error is a failure
// ([KindFailed]) carrying the error's text.
type Backend interface {
	// ID answers [RouteID].
	ID(ctx context.Context) (IDResult, error)
	// Status answers [RouteStatus].
	Status(ctx context.Context) (Status, error)
	// PairShow makes an invite valid for ttl, the backend's default when 0
	// ([RoutePairShow]).
	PairShow(ctx context.Context, ttl time.Duration) (ShowResult, error)
	// PairScan handles a scanned invite code ([RoutePairScan]).
	PairScan(ctx context.Context, code string) (ScanResult, error)
	// PairWait waits until the pairing with the scanned code completes and
	// returns it, or fails when the invites expire first or ctx ends
	// ([RoutePairWait]).
	PairWait(ctx context.Context, code string) (ScanResult, error)
	// Friends lists the friends ([RouteFriends]).
	Friends(ctx context.Context) ([]FriendView, error)
	// FriendAction blocks, unblocks or removes the friend with user ID user
	// ([RouteFriendBlock], [RouteFriendUnblock], [RouteFriendRemove]).
	FriendAction(ctx context.Context, action FriendAction, user string) (FriendStatus, error)
	// Relay sets up a relayed path ([RouteRelay]).
	Relay(ctx context.Context, req RelayRequest) (RelayResult, error)
	// Devices lists this user's devices ([RouteDevices]).
	Devices(ctx context.Context) ([]OwnDevice, error)
	// DevicesRevoke applies a signed revocation ([RouteDevicesRevoke]).
	DevicesRevoke(ctx context.Context, req RevokeRequest) (RevokeResult, error)
}

// NewHandler returns the API's HTTP handler, serving every route from b.
func NewHandler(b Backend) http.Handler {
	type none struct{}
	mux := http.NewServeMux()
	mux.Handle(RouteID, handle(func(ctx context.Context, _ *none) (IDResult, error) {
		return b.ID(ctx)
	}))
	mux.Handle(RouteStatus, handle(func(ctx context.Context, _ *none) (Status, error) {
		return b.Status(ctx)
	}))
	mux.Handle(RoutePairShow, handle(func(ctx context.Context, in *ShowRequest) (ShowResult, error) {
		return b.PairShow(ctx, in.TTL)
	}))
	mux.Handle(RoutePairScan, handle(func(ctx context.Context, in *ScanRequest) (ScanResult, error) {
		return b.PairScan(ctx, in.Code)
	}))
	mux.Handle(RoutePairWait, handle(func(ctx context.Context, in *WaitRequest) (ScanResult, error) {
		return b.PairWait(ctx, in.Code)
	}))
	mux.Handle(RouteFriends, handle(func(ctx context.Context, _ *none) ([]FriendView, error) {
		return b.Friends(ctx)
	}))
	for _, action := range FriendActions {
		mux.Handle(friendRoutes[action], handle(func(ctx context.Context, in *FriendRequest) (FriendStatus, error) {
			return b.FriendAction(ctx, action, in.UserID)
		}))
	}
	registerNet(mux, b)
	registerConv(mux, b)
	registerArchive(mux, b)
	registerWeb(mux, b)
	mux.Handle(RouteRelay, handle(func(ctx context.Context, in *RelayRequest) (RelayResult, error) {
		return b.Relay(ctx, *in)
	}))
	mux.Handle(RouteDevices, handle(func(ctx context.Context, _ *none) ([]OwnDevice, error) {
		return b.Devices(ctx)
	}))
	mux.Handle(RouteDevicesRevoke, handle(func(ctx context.Context, in *RevokeRequest) (RevokeResult, error) {
		return b.DevicesRevoke(ctx, *in)
	}))
	return mux
}

// handle adapts a function that returns a value or an error into an
// http.Handler that speaks this package's JSON conventions. The request
// body, if any, is decoded into a fresh In.
func handle[In, Out any](fn func(ctx context.Context, in *In) (Out, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := new(In)
		if r.Body != nil {
			if err := decodeRequest(r.Body, in); err != nil {
				writeError(w, &Error{Kind: KindBadInput, Message: "malformed request: " + err.Error()})
				return
			}
		}
		out, err := fn(r.Context(), in)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

// MaxRequestBody bounds a request's body, in bytes.
const MaxRequestBody = 64 << 10

// errBodyTooLarge: a request body over MaxRequestBody.
var errBodyTooLarge = fmt.Errorf("the body is larger than %d bytes", MaxRequestBody)

// decodeRequest decodes a request body into in: one JSON document of at
// most MaxRequestBody bytes and nothing after it but white space. An empty
// body leaves in as it was. Reading it is bounded in time by the server's
// ReadTimeout.
func decodeRequest(body io.Reader, in any) error {
	b, err := io.ReadAll(io.LimitReader(body, MaxRequestBody+1))
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if len(b) > MaxRequestBody {
		return errBodyTooLarge
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	return json.Unmarshal(b, in)
}

// writeError writes err as an [Error]; an error that is not one is a
// failure of kind KindFailed.
func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Kind: KindFailed, Message: err.Error()}
	}
	status := http.StatusInternalServerError
	switch e.Kind {
	case KindBadInput:
		status = http.StatusBadRequest
	case KindNotFound:
		status = http.StatusNotFound
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}
