package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/pairing"
)

// maxFrame bounds a camera frame or an uploaded photo, in bytes.
const maxFrame = 8 << 20

// qrScale is the pixels per module of the invite's PNG.
const qrScale = 8

// invites remembers the invite the console shows last, so that the QR
// image (fetched separately) is that invite's.
type invites struct {
	mu   sync.Mutex
	code string // guarded by mu
}

func (s *Server) pairRoutes() {
	m := s.mux
	m.Handle("POST /api/pair/show", api(func(ctx context.Context, _ *none) (control.ShowResult, error) {
		res, err := s.b.PairShow(ctx, 0)
		if err == nil {
			s.shown.mu.Lock()
			s.shown.code = res.Code
			s.shown.mu.Unlock()
		}
		return res, err
	}))
	m.HandleFunc("GET /api/pair/qr.png", func(w http.ResponseWriter, r *http.Request) {
		s.shown.mu.Lock()
		code := s.shown.code
		s.shown.mu.Unlock()
		if code == "" {
			writeJSONError(w, http.StatusNotFound, "no invite shown yet")
			return
		}
		var buf bytes.Buffer
		if err := pairing.WritePNG(&buf, code, qrScale); err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(buf.Bytes())
	})
	m.HandleFunc("POST /api/pair/frame", s.serveFrame)
	m.Handle("POST /api/pair/scan", api(func(ctx context.Context, in *control.ScanRequest) (control.ScanResult, error) {
		res, err := s.b.PairScan(ctx, strings.TrimSpace(in.Code))
		if err == nil {
			s.Notify(TopicPair)
		}
		return res, err
	}))
	m.Handle("POST /api/pair/wait", api(func(ctx context.Context, in *control.WaitRequest) (control.ScanResult, error) {
		res, err := s.b.PairWait(ctx, strings.TrimSpace(in.Code))
		if err == nil {
			s.Notify(TopicPair)
			s.Notify(TopicFriends)
		}
		return res, err
	}))
}

// frameResult is what POST /api/pair/frame answers: the text of the QR
// code found, or found false.
type frameResult struct {
	Found bool   `json:"found"`
	Code  string `json:"code,omitempty"`
}

// serveFrame decodes a camera frame or a photo (JPEG or PNG, the body) with
// pairing.DecodeImage. One decode runs at a time; a frame that arrives
// meanwhile is answered at once with found false, so a page sending frames
// never queues them.
func (s *Server) serveFrame(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFrame+1))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "reading the frame: "+err.Error())
		return
	}
	if len(body) > maxFrame {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "the image is larger than 8 MiB")
		return
	}
	photo := r.URL.Query().Get("photo") != ""
	if photo {
		select { // a photo waits its turn
		case s.decode <- struct{}{}:
		case <-r.Context().Done():
			return
		}
	} else {
		select {
		case s.decode <- struct{}{}:
		default:
			writeJSON(w, http.StatusOK, frameResult{})
			return
		}
	}
	code, err := pairing.DecodeImage(bytes.NewReader(body))
	<-s.decode
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, frameResult{Found: true, Code: code})
	case errors.Is(err, pairing.ErrNoQRCode) && !photo:
		writeJSON(w, http.StatusOK, frameResult{})
	default:
		writeError(w, &control.Error{Kind: control.KindBadInput, Message: err.Error()})
	}
}
