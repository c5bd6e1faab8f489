package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotRunning means the data dir has no running daemon.
var ErrNotRunning = errors.New("daemon not running")

// maxResponse caps a response body.
const maxResponse = 8 << 20

// Client talks to one daemon's local API.
type Client struct {
	http  *http.Client
	base  string
	token string
}

// Dial returns a client for the daemon whose data dir is dir. It fails with
// ErrNotRunning when the daemon is not listening.
func Dial(dir string) (*Client, error) {
	raw, err := os.ReadFile(filepath.Join(dir, AddrFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s (start it with `ztmeshd --dir %s`)", ErrNotRunning, AddrFile, dir, dir)
	}
	if err != nil {
		return nil, err
	}
	network, addr, ok := strings.Cut(strings.TrimSpace(string(raw)), ":")
	if !ok || (network != "unix" && network != "tcp") {
		return nil, fmt.Errorf("bad %s: %q", AddrFile, raw)
	}
	c := &Client{base: "http://ztmeshd"}
	if network == "tcp" {
		tok, err := os.ReadFile(filepath.Join(dir, TokenFile))
		if err != nil {
			return nil, fmt.Errorf("API token: %w", err)
		}
		c.token = strings.TrimSpace(string(tok))
	}
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	c.http = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				conn, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, fmt.Errorf("%w: %v", ErrNotRunning, err)
				}
				return conn, nil
			},
		},
	}
	return c, nil
}

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Peers returns GET /v1/peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, c.do(ctx, http.MethodGet, "/v1/peers", nil, &ps)
}

// InstallCredential sends a renewed credential to the daemon.
func (c *Client) InstallCredential(ctx context.Context, jwt []byte) (*Credential, error) {
	var cr Credential
	return &cr, c.do(ctx, http.MethodPost, "/v1/credential", jwt, &cr)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	return json.Unmarshal(data, out)
}

// Publish publishes data on a zone channel through the daemon.
func (c *Client) Publish(ctx context.Context, zone, channel string, data []byte) (*PublishResponse, error) {
	body, err := json.Marshal(PublishRequest{Zone: zone, Channel: channel, Data: data})
	if err != nil {
		return nil, err
	}
	var r PublishResponse
	return &r, c.do(ctx, http.MethodPost, "/v1/publish", body, &r)
}

// PushRevocations publishes a signed revocation list on the control topic.
func (c *Client) PushRevocations(ctx context.Context, token []byte) error {
	return c.do(ctx, http.MethodPost, "/v1/control/revocations", token, &struct{}{})
}

// PushPolicy publishes a signed policy bundle on the control topic.
func (c *Client) PushPolicy(ctx context.Context, bundle []byte) error {
	return c.do(ctx, http.MethodPost, "/v1/control/policy", bundle, &struct{}{})
}

// Subscribe streams a zone channel's messages to fn until ctx ends, fn
// returns an error, or the daemon goes away.
func (c *Client) Subscribe(ctx context.Context, zone, channel string, fn func(Message) error) error {
	q := url.Values{"zone": {zone}, "channel": {channel}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/subscribe?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	stream := *c.http
	stream.Timeout = 0 // a subscription lasts
	resp, err := stream.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue // comments (keep-alives) and blank separators
		}
		var m Message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			return fmt.Errorf("bad event from daemon: %w", err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return sc.Err()
}
