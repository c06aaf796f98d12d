package control

import (
	"context"
	"net/http"

	"github.com/kith-project/kith/seed"
)

// RosterBackend is the part of a backend that takes revocations. A
// [Backend] that is not one answers [RouteRosterRevoke] with an error of
// kind [KindFailed].
//
// It is the plumbing under "kith devices revoke": the command derives the
// user key from the phrase, signs the revocation and hands it over here;
// the agent never sees the phrase.
type RosterBackend interface {
	// RosterRevoke records rev, a revocation of one of this user's
	// devices signed by the user key, and passes it to the user's other
	// devices and to every friend ([RouteRosterRevoke]).
	RosterRevoke(ctx context.Context, req RevokeRequest) (RevokeResult, error)
}

// RevokeRequest carries a revocation in its binary form (package seed).
type RevokeRequest struct {
	Revocation []byte `json:"revocation"`
}

// RevokeResult is the answer to [RouteRosterRevoke].
type RevokeResult struct {
	DeviceIndex uint32            `json:"device_index"`
	DeviceID    seed.DevicePublic `json:"device_id"`
	Revoked     bool              `json:"revoked"`
}

func registerRoster(mux *http.ServeMux, b Backend) {
	rb, ok := b.(RosterBackend)
	mux.Handle(RouteRosterRevoke, handle(func(ctx context.Context, in *RevokeRequest) (RevokeResult, error) {
		if !ok {
			return RevokeResult{}, &Error{Kind: KindFailed, Message: "this agent does not take revocations"}
		}
		return rb.RosterRevoke(ctx, *in)
	}))
}

// RosterRevoke hands a signed revocation to the agent.
func (c *Client) RosterRevoke(ctx context.Context, req RevokeRequest) (RevokeResult, error) {
	var res RevokeResult
	err := c.do(ctx, RouteRosterRevoke, req, &res)
	return res, err
}
