package web

import (
	"context"

	"github.com/kith-project/kith/internal/control"
)

// archiveBackend is the backend's archive part, or nil.
func (s *Server) archiveBackend() control.ArchiveBackend {
	ab, _ := s.b.(control.ArchiveBackend)
	return ab
}

// errNoArchive answers the archive routes of a backend without them.
var errNoArchive = &control.Error{Kind: control.KindFailed, Message: "this agent keeps no archives"}

// archiveView is GET /api/archive: "kith archive status", "kith archive
// list" and "kith archive quota" in one answer, for the archive page.
type archiveView struct {
	Status control.ArchiveStatus      `json:"status"`
	Blobs  []control.ArchiveBlob      `json:"blobs"`
	Quota  control.ArchiveQuotaResult `json:"quota"`
}

// archiveRoutes registers the archive API: what the archive page shows, and
// "kith archive now". Fetching a blob and changing the quota stay in the
// command line.
func (s *Server) archiveRoutes() {
	ab := s.archiveBackend()
	s.mux.Handle("GET /api/archive", api(func(ctx context.Context, _ *none) (archiveView, error) {
		var v archiveView
		if ab == nil {
			return v, errNoArchive
		}
		var err error
		if v.Status, err = ab.ArchiveStatus(ctx); err != nil {
			return v, err
		}
		if v.Blobs, err = ab.ArchiveList(ctx); err != nil {
			return v, err
		}
		if v.Blobs == nil {
			v.Blobs = []control.ArchiveBlob{}
		}
		v.Quota, err = ab.ArchiveQuota(ctx, control.ArchiveQuotaRequest{})
		return v, err
	}))
	s.mux.Handle("POST /api/archive/now", api(func(ctx context.Context, _ *none) (control.ArchiveNowResult, error) {
		if ab == nil {
			return control.ArchiveNowResult{}, errNoArchive
		}
		res, err := ab.ArchiveNow(ctx)
		if err == nil {
			s.Notify(TopicArchive)
			s.Notify(TopicConv)
		}
		return res, err
	}))
}
