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

var errNotFound = errors.New("not found")

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

// Members lists the connected peers and, after them, every member the
// daemon knows from its announcement that is not connected.
func (c *Client) Members(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, c.do(ctx, http.MethodGet, "/v1/peers?all=1", nil, &ps)
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
	if resp.StatusCode == http.StatusNotFound && method == http.MethodGet {
		return errNotFound
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

// PushReference publishes signed attestation reference values on the control topic.
func (c *Client) PushReference(ctx context.Context, ref []byte) error {
	return c.do(ctx, http.MethodPost, "/v1/control/reference", ref, &struct{}{})
}

// PushPolicy publishes a signed policy bundle on the control topic.
func (c *Client) PushPolicy(ctx context.Context, bundle []byte) error {
	return c.do(ctx, http.MethodPost, "/v1/control/policy", bundle, &struct{}{})
}

// Subscribe streams a zone channel's messages to fn until ctx ends, fn
// returns an error, or the daemon goes away.
func (c *Client) Subscribe(ctx context.Context, zone, channel string, fn func(Message) error) error {
	q := url.Values{"zone": {zone}, "channel": {channel}}
	return c.stream(ctx, "/v1/subscribe?"+q.Encode(), func(line []byte) error {
		var m Message
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("bad event from daemon: %w", err)
		}
		return fn(m)
	})
}

// stream reads Server-Sent Events from path, calling fn with each data line.
func (c *Client) stream(ctx context.Context, path string, fn func(data []byte) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
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
		if err := fn([]byte(line)); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return sc.Err()
}

func statePath(zone, name, key string) string {
	p := "/v1/state/" + url.PathEscape(name)
	if key != "" {
		p += "/" + url.PathEscape(key)
	}
	return p + "?" + url.Values{"zone": {zone}}.Encode()
}

// StatePut writes a key of a zone's shared state.
func (c *Client) StatePut(ctx context.Context, zone, name, key string, value []byte) error {
	return c.do(ctx, http.MethodPut, statePath(zone, name, key), value, &struct{}{})
}

// StateGet reads a key; ok is false if it is absent.
func (c *Client) StateGet(ctx context.Context, zone, name, key string) (value []byte, ok bool, err error) {
	var v StateValue
	err = c.do(ctx, http.MethodGet, statePath(zone, name, key), nil, &v)
	if errors.Is(err, errNotFound) {
		return nil, false, nil
	}
	return v.Value, err == nil, err
}

// StateDelete deletes a key.
func (c *Client) StateDelete(ctx context.Context, zone, name, key string) error {
	return c.do(ctx, http.MethodDelete, statePath(zone, name, key), nil, &struct{}{})
}

// StateList returns the whole state.
func (c *Client) StateList(ctx context.Context, zone, name string) (map[string][]byte, error) {
	var m map[string][]byte
	return m, c.do(ctx, http.MethodGet, statePath(zone, name, ""), nil, &m)
}

// StateWatch streams a state's changes to fn.
func (c *Client) StateWatch(ctx context.Context, zone, name string, fn func(StateChange) error) error {
	return c.stream(ctx, "/v1/state/"+url.PathEscape(name)+"/watch?"+url.Values{"zone": {zone}}.Encode(), func(line []byte) error {
		var ch StateChange
		if err := json.Unmarshal(line, &ch); err != nil {
			return fmt.Errorf("bad event from daemon: %w", err)
		}
		return fn(ch)
	})
}
