package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ztmesh/ztmesh/crdt"
	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/internal/buildinfo"
	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/internal/wire"
	"github.com/ztmesh/ztmesh/node/api"
	"github.com/ztmesh/ztmesh/policy"
	"github.com/ztmesh/ztmesh/pubsub"
)

// apiServer serves the local API (see package node/api).
type apiServer struct {
	n     *Node
	srv   *http.Server
	ln    net.Listener
	token string // bearer token for a TCP listener; "" for a Unix socket
	files []string
}

func newAPIServer(n *Node) (*apiServer, error) {
	a := &apiServer{n: n}
	var err error
	switch n.s.apiNet {
	case "unix":
		a.ln, err = listenUnix(n.s.apiAddr)
		if err == nil {
			a.ln = &peerCredListener{Listener: a.ln, allow: uidAllowed, log: n.log}
			a.files = append(a.files, n.s.apiAddr)
		}
	case "tcp":
		a.ln, err = listenTCP(n.s.apiAddr)
		if err == nil {
			a.token, err = a.writeToken()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("local API: %w", err)
	}
	addr := n.s.apiNet + ":" + a.ln.Addr().String()
	addrFile := filepath.Join(n.cfg.Dir, api.AddrFile)
	if err := fsutil.WriteFileAtomic(addrFile, []byte(addr+"\n"), 0o600); err != nil {
		a.ln.Close()
		return nil, fmt.Errorf("local API: %w", err)
	}
	a.files = append(a.files, addrFile)

	mux := http.NewServeMux()
	healthHandlers(mux, n)
	mux.HandleFunc("GET /v1/status", a.status)
	mux.HandleFunc("GET /v1/peers", a.peers)
	mux.HandleFunc("POST /v1/credential", a.installCredential)
	mux.HandleFunc("POST /v1/publish", a.publish)
	mux.HandleFunc("GET /v1/subscribe", a.subscribe)
	mux.HandleFunc("PUT /v1/state/{name}/{key...}", a.statePut)
	mux.HandleFunc("DELETE /v1/state/{name}/{key...}", a.stateDelete)
	mux.HandleFunc("GET /v1/state/{name}/{key...}", a.stateGet)
	mux.HandleFunc("GET /v1/state/{name}", a.stateList)
	mux.HandleFunc("GET /v1/state/{name}/watch", a.stateWatch)
	mux.HandleFunc("POST /v1/control/revocations", a.pushControl(func(ctx context.Context, tok []byte) error {
		return a.n.mesh.PublishRevocations(ctx, tok)
	}))
	mux.HandleFunc("POST /v1/control/policy", a.pushControl(func(ctx context.Context, tok []byte) error {
		return a.n.mesh.PublishPolicyBundle(ctx, tok)
	}))
	mux.HandleFunc("POST /v1/control/reference", a.pushControl(func(ctx context.Context, tok []byte) error {
		return a.n.mesh.PublishReference(ctx, tok)
	}))
	a.srv = &http.Server{Handler: a.auth(mux), ReadHeaderTimeout: 5 * time.Second}
	n.goLoop(func(context.Context) {
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("local API", "event_type", "api_error", "reason", err.Error())
		}
	})
	return a, nil
}

func (a *apiServer) writeToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	path := filepath.Join(a.n.cfg.Dir, api.TokenFile)
	if err := fsutil.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	a.files = append(a.files, path)
	return tok, nil
}

func (a *apiServer) close() error {
	err := a.srv.Close()
	for _, f := range a.files {
		os.Remove(f)
	}
	return err
}

// auth requires the bearer token on a TCP listener. A Unix socket is
// protected by its file mode (0600: the daemon's user only).
func (a *apiServer) auth(next http.Handler) http.Handler {
	if a.token == "" {
		return next
	}
	want := []byte("Bearer " + a.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (see "+api.TokenFile+" in the data dir)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *apiServer) status(w http.ResponseWriter, _ *http.Request) {
	n := a.n
	st := api.Status{
		DID:            n.id.DID().String(),
		PeerID:         n.host.ID().String(),
		Mesh:           n.cfg.Mesh,
		ListenAddrs:    multiaddrStrings(n.ListenAddrs()),
		Credential:     credentialJSON(n.cred.Load()),
		PeersConnected: len(n.host.Network().Peers()),
		PeersVerified:  n.roster.connected.Len(),
		Revocations:    []api.Revocation{},
		RefusedBy:      []api.Refusal{},
		PolicyVersion:  n.policy.Version(),
		PolicySource:   n.policy.Source(),
		Version:        buildinfo.Get().String(),
	}
	for _, d := range n.verifier.Issuers() {
		st.TrustIssuers = append(st.TrustIssuers, d.String())
	}
	for _, l := range n.verifier.Revocations().Lists() {
		st.Revocations = append(st.Revocations, api.Revocation{
			Issuer: l.Issuer.String(), Version: l.Version, Credentials: len(l.Credentials), Subjects: len(l.Subjects),
		})
	}
	for p, r := range n.handshakes.refusals() {
		st.RefusedBy = append(st.RefusedBy, api.Refusal{Peer: p.String(), Reason: r.reason, At: r.at.UTC().Format(time.RFC3339)})
	}
	slices.SortFunc(st.RefusedBy, func(a, b api.Refusal) int { return strings.Compare(a.Peer, b.Peer) })
	writeJSON(w, st)
}

func (a *apiServer) peers(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("all") != "" {
		writeJSON(w, allMembers(a.n))
		return
	}
	writeJSON(w, a.n.Peers())
}

// allMembers is n.Peers and, after them, every member n knows from its
// announcement (its zones' members) that is not connected: a member
// quarantined two hops away shows here with n's verdict on it.
func allMembers(n *Node) []api.Peer {
	out := n.Peers()
	seen := map[string]bool{}
	for _, p := range out {
		seen[p.PeerID] = true
	}
	dir := n.roster.Directory()
	ids := make([]peer.ID, 0, len(dir))
	for p := range dir {
		if !seen[p.String()] && p != n.host.ID() {
			ids = append(ids, p)
		}
	}
	slices.Sort(ids)
	for _, p := range ids {
		cred := dir[p]
		c := credentialJSON(cred)
		tv := n.trustDetail(cred)
		out = append(out, api.Peer{
			DID: cred.Subject.String(), PeerID: p.String(), Verified: true,
			Role: c.Role, TrustScore: c.TrustScore, Zones: c.Zones, SoftwareVersion: c.SoftwareVersion,
			Issuer: c.Issuer, Expires: c.Expires, Addrs: []string{},
			EffectiveTrust: tv.trust, Attested: tv.attested, Quarantined: tv.quarantine != "", QuarantineReason: tv.quarantine,
			AttestationPending: tv.pending, RejectedMessages: tv.rejected, RateLimitViolations: tv.rateLimited,
		})
	}
	return out
}

// Peers lists the connected peers, verified or not, verified first.
func (n *Node) Peers() []api.Peer {
	out := []api.Peer{}
	seen := map[string]bool{}
	for _, p := range n.roster.connected.List() {
		c := credentialJSON(p.Credential)
		tv := n.trustDetail(p.Credential)
		out = append(out, api.Peer{
			DID: p.DID.String(), PeerID: p.ID.String(), Verified: true, Connected: true,
			Role: c.Role, TrustScore: c.TrustScore, Zones: c.Zones, SoftwareVersion: c.SoftwareVersion,
			Issuer: c.Issuer, Expires: c.Expires, Addrs: n.peerAddrs(p.ID),
			EffectiveTrust: tv.trust, Attested: tv.attested, Quarantined: tv.quarantine != "", QuarantineReason: tv.quarantine,
			AttestationPending: tv.pending, RejectedMessages: tv.rejected, RateLimitViolations: tv.rateLimited,
		})
		seen[p.ID.String()] = true
	}
	for _, p := range n.host.Network().Peers() {
		if seen[p.String()] {
			continue
		}
		e := api.Peer{PeerID: p.String(), Zones: []string{}, Addrs: n.peerAddrs(p), Connected: true}
		if d, err := did.DIDFromPeerID(p); err == nil {
			e.DID = d.String()
		}
		out = append(out, e)
	}
	return out
}

func (n *Node) peerAddrs(p interface{ String() string }) []string {
	var out []string
	for _, c := range n.host.Network().Conns() {
		if c.RemotePeer().String() == p.String() && c.Stat().Direction != network.DirUnknown {
			out = append(out, c.RemoteMultiaddr().String())
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

func (a *apiServer) installCredential(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, did.MaxCredentialSize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "credential too large")
		return
	}
	c, err := a.n.InstallCredential(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, oneLine(err))
		return
	}
	writeJSON(w, credentialJSON(c))
}

// maxPublishBody fits the largest payload, base64-encoded, in JSON.
const maxPublishBody = pubsub.MaxPayload/3*4 + 8<<10

func (a *apiServer) publish(w http.ResponseWriter, r *http.Request) {
	var req api.PublishRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPublishBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload too large: at most %d bytes", pubsub.MaxPayload))
		return
	}
	if err := wire.DecodeStrict(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad publish request: "+err.Error())
		return
	}
	p, err := a.n.mesh.Publish(r.Context(), req.Zone, req.Channel, req.Data)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, policy.ErrDenied) {
			code = http.StatusForbidden
			a.n.log.Info("local publish denied", "event_type", "publish_denied", "zone", req.Zone, "channel", req.Channel, "reason", err.Error())
		}
		writeError(w, code, err.Error())
		return
	}
	writeJSON(w, api.PublishResponse{Topic: p.Topic, Seq: p.Seq, Time: p.Time.UTC().Format(time.RFC3339Nano)})
}

// subscribe streams a zone channel as Server-Sent Events.
func (a *apiServer) subscribe(w http.ResponseWriter, r *http.Request) {
	zone, channel := r.URL.Query().Get("zone"), r.URL.Query().Get("channel")
	sub, err := a.n.mesh.Subscribe(zone, channel)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, policy.ErrDenied) {
			code = http.StatusForbidden
		}
		writeError(w, code, err.Error())
		return
	}
	defer sub.Cancel()
	streamSSE(w, r, func(yield func(any) bool) {
		for {
			d, err := sub.Next(r.Context())
			if err != nil {
				return
			}
			if !yield(api.Message{Origin: d.Origin.String(), Zone: d.Zone, Channel: d.Channel,
				Seq: d.Seq, Time: d.Time.UTC().Format(time.RFC3339Nano), Data: d.Data}) {
				return
			}
		}
	})
}

// pushControl publishes issuer-signed control content (a revocation list or
// a policy bundle) through this daemon.
func (a *apiServer) pushControl(publish func(context.Context, []byte) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pubsub.MaxMessageSize/2))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "control content too large")
			return
		}
		if err := publish(r.Context(), bytes.TrimSpace(body)); err != nil {
			writeError(w, http.StatusBadRequest, oneLine(err))
			return
		}
		writeJSON(w, struct{}{})
	}
}

// replica opens the LWW state a request names, answering errors itself.
func (a *apiServer) replica(w http.ResponseWriter, r *http.Request) *crdt.Replica {
	rep, err := a.n.State(r.URL.Query().Get("zone"), r.PathValue("name"), crdt.LWWMap)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, policy.ErrDenied) {
			code = http.StatusForbidden
		}
		writeError(w, code, err.Error())
		return nil
	}
	return rep
}

func (a *apiServer) statePut(w http.ResponseWriter, r *http.Request) {
	rep := a.replica(w, r)
	if rep == nil {
		return
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, crdt.MaxValueSize))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("value too large: at most %d bytes", crdt.MaxValueSize))
		return
	}
	if _, err := rep.Put(r.Context(), r.PathValue("key"), value); err != nil && !errors.Is(err, crdt.ErrBroadcast) {
		writeStateError(w, err)
		return
	}
	// Committed (an ErrBroadcast only means peers get it by anti-entropy).
	writeJSON(w, struct{}{})
}

func (a *apiServer) stateDelete(w http.ResponseWriter, r *http.Request) {
	rep := a.replica(w, r)
	if rep == nil {
		return
	}
	if _, err := rep.Delete(r.Context(), r.PathValue("key")); err != nil && !errors.Is(err, crdt.ErrBroadcast) {
		writeStateError(w, err)
		return
	}
	writeJSON(w, struct{}{})
}

func (a *apiServer) stateGet(w http.ResponseWriter, r *http.Request) {
	rep := a.replica(w, r)
	if rep == nil {
		return
	}
	key := r.PathValue("key")
	v, ok := rep.Get(key)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no key %q", key))
		return
	}
	writeJSON(w, api.StateValue{Key: key, Value: v})
}

func (a *apiServer) stateList(w http.ResponseWriter, r *http.Request) {
	if rep := a.replica(w, r); rep != nil {
		writeJSON(w, rep.Snapshot())
	}
}

func (a *apiServer) stateWatch(w http.ResponseWriter, r *http.Request) {
	rep := a.replica(w, r)
	if rep == nil {
		return
	}
	changes := rep.Watch(r.Context())
	streamSSE(w, r, func(yield func(any) bool) {
		for ch := range changes {
			if !yield(api.StateChange{Key: ch.Key, Value: ch.Value, Deleted: ch.Deleted,
				Writer: ch.TS.Origin.String(), Time: time.Unix(0, ch.TS.Wall).UTC().Format(time.RFC3339Nano)}) {
				return
			}
		}
	})
}

func writeStateError(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	if errors.Is(err, crdt.ErrUnauthorized) {
		code = http.StatusForbidden
	}
	writeError(w, code, oneLine(err))
}

// streamSSE writes each value events yields as a Server-Sent Event, with a
// keep-alive comment every 15 s, until the client goes away.
func streamSSE(w http.ResponseWriter, r *http.Request, events func(yield func(any) bool)) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": subscribed\n\n")
	flusher.Flush()
	ctx := r.Context()
	evs := make(chan any)
	go func() {
		defer close(evs)
		events(func(v any) bool {
			select {
			case evs <- v:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case v, ok := <-evs:
			if !ok {
				return
			}
			b, _ := json.Marshal(v)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			flusher.Flush()
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case <-ctx.Done():
			return
		}
	}
}

func credentialJSON(c *did.Credential) api.Credential {
	return api.Credential{
		ID: c.ID, Issuer: c.Issuer.String(), Subject: c.Subject.String(),
		Role: c.Claims.Role, TrustScore: c.Claims.TrustScore, Zones: c.Claims.Zones,
		SoftwareVersion: c.Claims.SoftwareVersion, Capabilities: c.Claims.Capabilities,
		NotBefore: c.NotBefore.Format(time.RFC3339), Expires: c.Expires.Format(time.RFC3339),
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(api.Error{Error: msg})
}

// maxUnixPath is the longest path a Unix socket can bind on Linux.
const maxUnixPath = 107

// listenUnix listens on a Unix socket with mode 0600. A stale socket file
// left by a crashed daemon is removed; a live one means another daemon owns
// the data dir.
func listenUnix(path string) (net.Listener, error) {
	// sockaddr_un holds 108 bytes with the terminating zero; a longer path
	// fails in bind with a bare "invalid argument".
	if len(path) > maxUnixPath {
		return nil, fmt.Errorf("socket path %s is %d bytes, over the %d a Unix socket allows: use a shorter --dir, or --api unix:SHORTER_PATH", path, len(path), maxUnixPath)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use: another ztmeshd runs with this data dir", path)
		}
		os.Remove(path)
	}
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil { // in case the umask did not apply
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func listenTCP(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
