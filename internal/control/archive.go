package control

import (
	"context"
	"net/http"

	"github.com/kith-project/kith/seed"
)

// Archives ("kith archive …", DESIGN §9).

// ArchiveBackend is the part of a backend that keeps archives. A [Backend]
// that is not one answers these routes with an error of kind [KindFailed].
type ArchiveBackend interface {
	// ArchiveStatus sums up the placement ([RouteArchiveStatus]).
	ArchiveStatus(ctx context.Context) (ArchiveStatus, error)
	// ArchiveList lists the blobs with their holders ([RouteArchiveList]).
	ArchiveList(ctx context.Context) ([]ArchiveBlob, error)
	// ArchiveNow archives every eligible conversation ([RouteArchiveNow]).
	ArchiveNow(ctx context.Context) (ArchiveNowResult, error)
	// ArchiveGet returns a blob's sealed bytes, from this device or any
	// holder ([RouteArchiveGet]).
	ArchiveGet(ctx context.Context, blob string) (ArchiveGetResult, error)
	// ArchiveQuota reads, and with req.QuotaBytes set changes, how much
	// of this device friends may use ([RouteArchiveQuota]).
	ArchiveQuota(ctx context.Context, req ArchiveQuotaRequest) (ArchiveQuotaResult, error)
}

// ArchiveStatus is "kith archive status".
type ArchiveStatus struct {
	Blobs           int   `json:"blobs"`
	Bytes           int64 `json:"bytes"`
	MinReplicas     int   `json:"min_replicas"`
	UnderReplicated int   `json:"under_replicated"`
}

// ArchiveBlob is one line of "kith archive list".
type ArchiveBlob struct {
	Blob    string              `json:"blob"`
	Bytes   int64               `json:"bytes"`
	Holders []seed.DevicePublic `json:"holders"`
}

// ArchiveNowResult is "kith archive now".
type ArchiveNowResult struct {
	Archived []string `json:"archived"`
}

// ArchiveGetRequest names a blob by its full name (64 hex digits).
type ArchiveGetRequest struct {
	Blob string `json:"blob"`
}

// ArchiveGetResult carries a blob's sealed bytes.
type ArchiveGetResult struct {
	Data []byte `json:"data"`
}

// ArchiveQuotaRequest sets the quota when QuotaBytes is not nil.
type ArchiveQuotaRequest struct {
	QuotaBytes *int64 `json:"quota_bytes,omitempty"`
}

// ArchiveQuotaResult is "kith archive quota".
type ArchiveQuotaResult struct {
	QuotaBytes int64 `json:"quota_bytes"`
	UsedBytes  int64 `json:"used_bytes"`
}

// registerArchive serves the ArchiveBackend routes from b.
func registerArchive(mux *http.ServeMux, b Backend) {
	ab, ok := b.(ArchiveBackend)
	type none struct{}
	no := &Error{Kind: KindFailed, Message: "this agent does not keep archives"}
	mux.Handle(RouteArchiveStatus, handle(func(ctx context.Context, _ *none) (ArchiveStatus, error) {
		if !ok {
			return ArchiveStatus{}, no
		}
		return ab.ArchiveStatus(ctx)
	}))
	mux.Handle(RouteArchiveList, handle(func(ctx context.Context, _ *none) ([]ArchiveBlob, error) {
		if !ok {
			return nil, no
		}
		return ab.ArchiveList(ctx)
	}))
	mux.Handle(RouteArchiveNow, handle(func(ctx context.Context, _ *none) (ArchiveNowResult, error) {
		if !ok {
			return ArchiveNowResult{}, no
		}
		return ab.ArchiveNow(ctx)
	}))
	mux.Handle(RouteArchiveGet, handle(func(ctx context.Context, in *ArchiveGetRequest) (ArchiveGetResult, error) {
		if !ok {
			return ArchiveGetResult{}, no
		}
		return ab.ArchiveGet(ctx, in.Blob)
	}))
	mux.Handle(RouteArchiveQuota, handle(func(ctx context.Context, in *ArchiveQuotaRequest) (ArchiveQuotaResult, error) {
		if !ok {
			return ArchiveQuotaResult{}, no
		}
		return ab.ArchiveQuota(ctx, *in)
	}))
}

// ArchiveStatus sums up the placement.
func (c *Client) ArchiveStatus(ctx context.Context) (ArchiveStatus, error) {
	var out ArchiveStatus
	err := c.do(ctx, RouteArchiveStatus, nil, &out)
	return out, err
}

// ArchiveList lists the blobs.
func (c *Client) ArchiveList(ctx context.Context) ([]ArchiveBlob, error) {
	var out []ArchiveBlob
	err := c.do(ctx, RouteArchiveList, nil, &out)
	return out, err
}

// ArchiveNow archives every eligible conversation.
func (c *Client) ArchiveNow(ctx context.Context) (ArchiveNowResult, error) {
	var out ArchiveNowResult
	err := c.do(ctx, RouteArchiveNow, struct{}{}, &out)
	return out, err
}

// ArchiveGet returns a blob's sealed bytes.
func (c *Client) ArchiveGet(ctx context.Context, blob string) (ArchiveGetResult, error) {
	var out ArchiveGetResult
	err := c.do(ctx, RouteArchiveGet, ArchiveGetRequest{Blob: blob}, &out)
	return out, err
}

// ArchiveQuota reads or sets the friends' quota.
func (c *Client) ArchiveQuota(ctx context.Context, req ArchiveQuotaRequest) (ArchiveQuotaResult, error) {
	var out ArchiveQuotaResult
	err := c.do(ctx, RouteArchiveQuota, req, &out)
	return out, err
}
