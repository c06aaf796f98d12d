package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// Client talks to the agent of one home folder, one method per route.
// A request that finds no agent fails with a [*NoAgentError] (matching
// [ErrNoAgent]); one the agent refused, with an [*Error].
type Client struct {
	home string
	http *http.Client
}

// NewClient returns a client for the agent serving home.
func NewClient(home string) *Client {
	sock := SocketPath(home)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
	return &Client{home: home, http: &http.Client{Transport: tr}}
}

// ID asks who the agent's device is.
func (c *Client) ID(ctx context.Context) (IDResult, error) {
	var res IDResult
	err := c.do(ctx, RouteID, nil, &res)
	return res, err
}

// Status asks for the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, RouteStatus, nil, &st)
	return st, err
}

// PairShow asks for a new invite valid for ttl (the agent's default when 0).
func (c *Client) PairShow(ctx context.Context, ttl time.Duration) (ShowResult, error) {
	var res ShowResult
	err := c.do(ctx, RoutePairShow, ShowRequest{TTL: ttl}, &res)
	return res, err
}

// PairScan hands the agent the code of the other device's invite.
func (c *Client) PairScan(ctx context.Context, code string) (ScanResult, error) {
	var res ScanResult
	err := c.do(ctx, RoutePairScan, ScanRequest{Code: code}, &res)
	return res, err
}

// PairWait waits, as long as ctx allows, until the pairing with the
// scanned code completes, or the invites expire.
func (c *Client) PairWait(ctx context.Context, code string) (ScanResult, error) {
	var res ScanResult
	err := c.do(ctx, RoutePairWait, WaitRequest{Code: code}, &res)
	return res, err
}

// Friends lists the friends and their devices.
func (c *Client) Friends(ctx context.Context) ([]FriendView, error) {
	var fs []FriendView
	err := c.do(ctx, RouteFriends, nil, &fs)
	return fs, err
}

// FriendAction blocks, unblocks or removes the friend with user ID user.
func (c *Client) FriendAction(ctx context.Context, action FriendAction, user string) (FriendStatus, error) {
	var res FriendStatus
	route, ok := friendRoutes[action]
	if !ok {
		return res, fmt.Errorf("control: unknown friend action %q", action)
	}
	err := c.do(ctx, route, FriendRequest{UserID: user}, &res)
	return res, err
}

// Relay sets up a relayed path to a device.
func (c *Client) Relay(ctx context.Context, req RelayRequest) (RelayResult, error) {
	var res RelayResult
	err := c.do(ctx, RouteRelay, req, &res)
	return res, err
}

// do sends in (nil for none) to route, and decodes the answer into out
// (nil to discard).
func (c *Client) do(ctx context.Context, route string, in, out any) error {
	method, path, _ := strings.Cut(route, " ")
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("control: encoding the request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://kith"+path, body)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control: reading the agent's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			return fmt.Errorf("control: the agent answered %s", resp.Status)
		}
		return &e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control: decoding the agent's answer: %w", err)
	}
	return nil
}

// dialError is the error of a request that did not reach the agent.
func (c *Client) dialError(err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
		return &NoAgentError{Home: c.home}
	}
	return fmt.Errorf("control: reaching the agent: %w", err)
}
