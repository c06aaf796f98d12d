package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kith-project/kith/internal/control"
	"github.com/kith-project/kith/roster"
	"github.com/kith-project/kith/seed"
)

// controlAPI is the agent's side of the local API: it implements
// control.Backend.
type controlAPI struct{ a *Agent }

var _ control.Backend = controlAPI{}

func (a *Agent) controlHandler() http.Handler { return control.NewHandler(controlAPI{a}) }

func (c controlAPI) ID(context.Context) (control.IDResult, error) {
	id := c.a.dev.Identity
	return control.IDResult{UserID: c.a.dev.Cert.User, DeviceID: c.a.dev.Cert.Device, DeviceIndex: id.DeviceIndex, Name: id.Name, ArchiveRecipient: id.ArchiveRecipient, Version: c.a.cfg.Version}, nil
}

func (c controlAPI) Status(context.Context) (control.Status, error) { return c.a.status(), nil }

func (c controlAPI) PairShow(_ context.Context, ttl time.Duration) (control.ShowResult, error) {
	if ttl < 0 || ttl > MaxInviteTTL {
		return control.ShowResult{}, &control.Error{Kind: control.KindBadInput,
			Message: fmt.Sprintf("an invite lasts at most %v; %v is outside 0..%v (0 means the agent's default)", MaxInviteTTL, ttl, MaxInviteTTL)}
	}
	return c.a.pair.show(ttl)
}

func (c controlAPI) PairScan(ctx context.Context, code string) (control.ScanResult, error) {
	res, err := c.a.pair.scan(ctx, code)
	var ce *control.Error
	refused := (err != nil && !(errors.As(err, &ce) && ce.Kind == control.KindBadInput)) || (err == nil && res.Unreachable != "")
	if refused && c.a.waitRevokedSelf(ctx) {
		// An own device refused us and said why (revoked.go).
		return control.ScanResult{}, &control.Error{Kind: control.KindFailed, Message: errRevokedSelf}
	}
	return res, err
}

func (c controlAPI) PairWait(ctx context.Context, code string) (control.ScanResult, error) {
	return c.a.pair.wait(ctx, code)
}

func (c controlAPI) Friends(context.Context) ([]control.FriendView, error) { return c.a.friends(), nil }

func (c controlAPI) FriendAction(_ context.Context, action control.FriendAction, user string) (control.FriendStatus, error) {
	return c.a.friendAction(action, user)
}

func (a *Agent) friends() []control.FriendView {
	fs, ps := a.book.snapshot()
	online := a.onlineSet()
	out := make([]control.FriendView, 0, len(fs))
	for _, f := range fs {
		v := control.FriendView{UserID: f.UserID, Name: f.Name, Status: f.Status, SAS: f.SAS, Devices: []control.DeviceView{}}
		if !f.PairedAt.IsZero() {
			t := f.PairedAt
			v.PairedAt = &t
		}
		for _, p := range ps {
			if p.UserID.Equal(f.UserID) {
				v.Devices = append(v.Devices, control.DeviceView{DeviceID: p.DeviceID, Name: p.Name, Addr: p.Addr, Online: online[p.DeviceID]})
			}
		}
		out = append(out, v)
	}
	return out
}

func (a *Agent) friendAction(action control.FriendAction, id string) (control.FriendStatus, error) {
	user, perr := seed.ParseUserPublic(id)
	if perr != nil || len(id) != 64 {
		return control.FriendStatus{}, &control.Error{Kind: control.KindBadInput, Message: "a user ID is 64 hexadecimal characters, as \"kith friends\" shows"}
	}
	if user.Equal(a.dev.Cert.User) {
		return control.FriendStatus{}, &control.Error{Kind: control.KindBadInput, Message: "that is your own user ID"}
	}
	var (
		f   roster.Friend
		err error
	)
	switch action {
	case control.FriendBlock:
		f, err = a.book.setStatus(user, roster.StatusBlocked)
		if err == nil {
			a.closeDevices(a.book.devicesOf(user))
		}
	case control.FriendUnblock:
		f, err = a.book.setStatus(user, roster.StatusFriend)
	case control.FriendRemove:
		var devs []seed.DevicePublic
		devs, err = a.book.remove(user)
		// Live connections of a removed friend go too, as for a block.
		a.closeDevices(devs)
		f = roster.Friend{UserID: user, Status: "removed"}
	default:
		return control.FriendStatus{}, &control.Error{Kind: control.KindBadInput, Message: fmt.Sprintf("unknown friend action %q", action)}
	}
	if errors.Is(err, errNoFriend) {
		return control.FriendStatus{}, &control.Error{Kind: control.KindNotFound, Message: "no friend with user ID " + id + ": see \"kith friends\""}
	}
	if err != nil {
		return control.FriendStatus{}, err
	}
	return control.FriendStatus{UserID: f.UserID, Status: string(f.Status)}, nil
}
