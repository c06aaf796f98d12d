package agent

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// IDResult is the answer to GET /v1/id.
type IDResult struct {
	UserID           string `json:"user_id"`
	DeviceID         string `json:"device_id"`
	DeviceIndex      uint32 `json:"device_index"`
	Name             string `json:"name"`
	ArchiveRecipient string `json:"archive_recipient"`
}

// ShowRequest asks for a new invite.
type ShowRequest struct {
	// TTL overrides the invite's lifetime (the agent's default when 0).
	TTL time.Duration `json:"ttl,omitempty"`
}

// ScanRequest hands the agent a scanned code.
type ScanRequest struct {
	Code string `json:"code"`
}

// FriendView is one friend as "kith friends" shows it.
type FriendView struct {
	UserID   string       `json:"user_id"`
	Name     string       `json:"name"`
	Status   string       `json:"status"`
	SAS      string       `json:"sas,omitempty"`
	PairedAt *time.Time   `json:"paired_at,omitempty"`
	Devices  []DeviceView `json:"devices"`
}

// DeviceView is one device of a friend.
type DeviceView struct {
	DeviceID string `json:"device_id"`
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	Online   bool   `json:"online"`
}

// FriendRequest names a user for block, unblock and remove.
type FriendRequest struct {
	UserID string `json:"user_id"`
}

// FriendStatus is the answer to block, unblock and remove.
type FriendStatus struct {
	UserID string `json:"user_id"`
	Status string `json:"status"`
}

type empty struct{}

func (a *Agent) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/id", control.Handler(func(context.Context, *empty) (IDResult, error) {
		id := a.dev.Identity
		return IDResult{UserID: id.UserID, DeviceID: id.DeviceID, DeviceIndex: id.DeviceIndex, Name: id.Name, ArchiveRecipient: id.ArchiveRecipient}, nil
	}))
	mux.Handle("GET /v1/status", control.Handler(func(context.Context, *empty) (Status, error) {
		return a.status(), nil
	}))
	mux.Handle("POST /v1/pair/show", control.Handler(func(_ context.Context, in *ShowRequest) (ShowResult, error) {
		return a.pair.show(in.TTL)
	}))
	mux.Handle("POST /v1/pair/scan", control.Handler(func(ctx context.Context, in *ScanRequest) (ScanResult, error) {
		return a.pair.scan(ctx, in.Code)
	}))
	mux.Handle("GET /v1/friends", control.Handler(func(context.Context, *empty) ([]FriendView, error) {
		return a.friends(), nil
	}))
	for _, action := range []string{"block", "unblock", "remove"} {
		mux.Handle("POST /v1/friends/"+action, control.Handler(func(_ context.Context, in *FriendRequest) (FriendStatus, error) {
			return a.friendAction(action, in.UserID)
		}))
	}
	return mux
}

func (a *Agent) friends() []FriendView {
	fs, ps := a.book.snapshot()
	online := a.onlineSet()
	out := make([]FriendView, 0, len(fs))
	for _, f := range fs {
		v := FriendView{UserID: f.UserID.ID(), Name: f.Name, Status: string(f.Status), SAS: f.SAS, Devices: []DeviceView{}}
		if !f.PairedAt.IsZero() {
			t := f.PairedAt
			v.PairedAt = &t
		}
		for _, p := range ps {
			if p.UserID.Equal(f.UserID) {
				v.Devices = append(v.Devices, DeviceView{DeviceID: p.DeviceID.ID(), Name: p.Name, Addr: p.Addr, Online: online[p.DeviceID]})
			}
		}
		out = append(out, v)
	}
	return out
}

func (a *Agent) friendAction(action, id string) (FriendStatus, error) {
	user, perr := seed.ParseUserPublic(id)
	if perr != nil || len(id) != 64 {
		return FriendStatus{}, &control.Error{Kind: control.KindBadInput, Message: "a user ID is 64 hexadecimal characters, as \"kith friends\" shows"}
	}
	if user.Equal(a.dev.Cert.User) {
		return FriendStatus{}, &control.Error{Kind: control.KindBadInput, Message: "that is your own user ID"}
	}
	var (
		f   roster.Friend
		err error
	)
	switch action {
	case "block":
		f, err = a.book.setStatus(user, roster.StatusBlocked)
		if err == nil {
			a.closeDevices(a.book.devicesOf(user))
		}
	case "unblock":
		f, err = a.book.setStatus(user, roster.StatusFriend)
	case "remove":
		var devs []seed.DevicePublic
		devs, err = a.book.remove(user)
		// Live connections of a removed friend go too, as for a block.
		a.closeDevices(devs)
		f = roster.Friend{UserID: user, Status: "removed"}
	}
	if errors.Is(err, errNoFriend) {
		return FriendStatus{}, &control.Error{Kind: control.KindNotFound, Message: "no friend with user ID " + id + ": see \"kith friends\""}
	}
	if err != nil {
		return FriendStatus{}, err
	}
	return FriendStatus{UserID: f.UserID.ID(), Status: string(f.Status)}, nil
}
