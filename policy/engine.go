package policy

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/ztmesh/ztmesh/did"
)

// Defaults of the engine's options.
const (
	// DefaultCacheSize is how many decisions the cache holds.
	DefaultCacheSize = 4096
	// DefaultCacheTTL is how long a cached decision is reused at most.
	DefaultCacheTTL = time.Minute
)

// Decision is the answer to one Input.
type Decision struct {
	// Allow is true only if data.ztmesh.authz.allow is exactly true.
	// Anything else (false, undefined, another value, an evaluation error)
	// denies.
	Allow bool
	// Reasons say why the request was denied, sorted: the policy's reasons
	// set, "policy error: ..." when evaluation failed, or a note that the
	// policy gave no reason. The reasons set is evaluated only for a denial,
	// so Reasons is empty on allow. It is shared with the cache: do not
	// modify it.
	Reasons []string
	// Version is the version of the policy that decided.
	Version uint64
}

// Engine decides requests with the policy in force. A new policy (a file, a
// signed bundle, modules) is compiled and its query prepared before it
// replaces the old one in a single atomic swap, so every decision sees one
// whole policy; a policy that fails to compile never replaces a working one.
// Engine is safe for concurrent use.
type Engine struct {
	log       *slog.Logger
	logAll    bool
	cacheSize int
	cacheTTL  time.Duration
	now       func() time.Time
	shared    *Compiles // nil: compile every policy here

	cur atomic.Pointer[compiled]

	mu            sync.Mutex // serializes loads; decisions never take it
	fileLoads     uint64     // version of the policy loaded by LoadPath
	bundleVersion uint64     // highest bundle version applied
}

// Option configures an Engine.
type Option func(*Engine) error

// WithLogger sets the decision log: JSON lines from a slog.JSONHandler in the
// daemon. Denials are logged at Warn, allows (with WithLogAllDecisions) at
// Info, policy loads at Info. nil (the default) discards.
func WithLogger(l *slog.Logger) Option {
	return func(e *Engine) error {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		e.log = l
		return nil
	}
}

// WithLogAllDecisions logs every decision, not only denials.
func WithLogAllDecisions(all bool) Option {
	return func(e *Engine) error {
		e.logAll = all
		return nil
	}
}

// WithCacheSize sets how many decisions are cached (DefaultCacheSize if not
// set); 0 turns the cache off.
func WithCacheSize(n int) Option {
	return func(e *Engine) error {
		if n < 0 {
			return fmt.Errorf("policy: cache size %d is negative", n)
		}
		e.cacheSize = n
		return nil
	}
}

// WithCacheTTL sets how long a cached decision is reused at most
// (DefaultCacheTTL if not set); it also bounds how stale input.now can be in a
// cached decision. 0 turns the cache off.
func WithCacheTTL(d time.Duration) Option {
	return func(e *Engine) error {
		if d < 0 {
			return fmt.Errorf("policy: cache TTL %s is negative", d)
		}
		e.cacheTTL = d
		return nil
	}
}

// WithNow sets the engine's clock (time.Now if not set): cache expiry, and
// input.now when the Input does not give one.
func WithNow(now func() time.Time) Option {
	return func(e *Engine) error {
		if now == nil {
			return fmt.Errorf("policy: nil clock")
		}
		e.now = now
		return nil
	}
}

// New returns an engine with the embedded default policy in force, as
// version 0 with source "embedded".
func New(opts ...Option) (*Engine, error) {
	e := &Engine{
		log:       slog.New(slog.DiscardHandler),
		cacheSize: DefaultCacheSize,
		cacheTTL:  DefaultCacheTTL,
		now:       time.Now,
	}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, err
		}
	}
	p, err := e.compile(DefaultModules(), 0, SourceEmbedded)
	if err != nil {
		return nil, fmt.Errorf("embedded default policy: %w", err) // a test makes sure it compiles
	}
	e.cur.Store(p)
	return e, nil
}

// Sources of a policy, as Source reports them.
const (
	SourceEmbedded = "embedded"
	sourceFile     = "file:"
	sourceBundle   = "bundle:"
)

// Version returns the version of the policy in force: 0 for the embedded
// default, the count of policies LoadPath has loaded for a file, the bundle's
// version for a bundle, or what LoadModules was given.
func (e *Engine) Version() uint64 { return e.cur.Load().version }

// Source returns where the policy in force came from: "embedded",
// "file:<path>" or "bundle:<issuer DID>" (or what LoadModules was given).
func (e *Engine) Source() string { return e.cur.Load().source }

// Modules returns a copy of the Rego modules in force, by name.
func (e *Engine) Modules() map[string]string { return maps.Clone(e.cur.Load().modules) }

// LoadModules compiles modules (Rego v1 source by file name) and, if they
// compile and define data.ztmesh.authz.allow, puts them in force as version
// with source. On error the old policy stays in force.
func (e *Engine) LoadModules(modules map[string]string, version uint64, source string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, err := e.compile(modules, version, source)
	if err != nil {
		return err
	}
	e.swap(p)
	return nil
}

// LoadPath reads a .rego file, or every .rego file in a directory tree except
// tests (*_test.rego), and puts them in force with source "file:<path>" and
// the next file version. Loading the same modules again from the same path
// is a no-op that keeps the cache; a file that does not read or compile
// leaves the old policy in force. It is safe to call on every change event.
func (e *Engine) LoadPath(path string) error {
	modules, _, err := ReadPath(path)
	if err != nil {
		return err
	}
	source := sourceFile + path
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur := e.cur.Load(); cur.source == source && maps.Equal(cur.modules, modules) {
		return nil
	}
	p, err := e.compile(modules, e.fileLoads+1, source)
	if err != nil {
		return fmt.Errorf("policy %s: %w", path, err)
	}
	e.fileLoads++
	e.swap(p)
	return nil
}

// ApplyBundle verifies a signed policy bundle (see VerifyBundle), checks
// that its version is greater than that of every bundle applied before,
// compiles it and puts it in force. On any error the old policy stays in
// force; applying the current bundle again is refused with ErrRollback.
func (e *Engine) ApplyBundle(token []byte, trusted func(did.DID) bool) (*Bundle, error) {
	b, err := VerifyBundle(token, trusted)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b.Version <= e.bundleVersion {
		return nil, fmt.Errorf("policy bundle rejected: %w: version %d from %s is not newer than version %d already applied",
			ErrRollback, b.Version, b.Issuer, e.bundleVersion)
	}
	p, err := e.compile(b.Modules, b.Version, sourceBundle+b.Issuer.String())
	if err != nil {
		return nil, fmt.Errorf("policy bundle version %d from %s rejected: %w", b.Version, b.Issuer, err)
	}
	e.bundleVersion = b.Version
	e.swap(p)
	return b, nil
}

// RaiseBundleFloor refuses, from now on, every bundle whose version is not
// above floor (a node restores the highest version it persisted, even of a
// bundle that has since expired). It never lowers the floor.
func (e *Engine) RaiseBundleFloor(floor uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.bundleVersion = max(e.bundleVersion, floor)
}

func (e *Engine) swap(p *compiled) {
	e.cur.Store(p)
	e.log.Info("policy loaded", "event_type", "policy_loaded", "policy_version", p.version,
		"policy_source", p.source, "modules", slices.Sorted(maps.Keys(p.modules)))
}

// Decide decides in with the policy in force. It never fails: an invalid
// input, an evaluation error (including ctx ending before or during the
// evaluation) or an undefined result is a denial whose reason says so, and
// is not cached. Other decisions for inputs with a Subject.CredentialID are
// cached (see the package doc); a cache hit does not allocate.
func (e *Engine) Decide(ctx context.Context, in *Input) Decision {
	p := e.cur.Load()
	now := e.now()
	if in == nil {
		return Decision{Reasons: []string{"invalid input: none given"}, Version: p.version}
	}
	cacheable := p.cache != nil && in.Subject.CredentialID != ""
	var k cacheKey
	if cacheable {
		k = keyOf(in)
		if d, ok := p.cache.get(&k, now); ok {
			// A cached denial was logged when it was decided; repeating it
			// for every message or peer-filter call (GossipSub asks on every
			// heartbeat) would flood the log. Only WithLogAllDecisions logs hits.
			if e.logAll {
				e.logDecision(ctx, p, in, now, d, true, nil)
			}
			return d
		}
	}
	d, err := p.decide(ctx, in, now)
	if err == nil && cacheable {
		p.cache.put(k, d, now, in.Subject.ValidUntil)
	}
	if !d.Allow || e.logAll {
		e.logDecision(ctx, p, in, now, d, false, err)
	}
	return d
}

// logDecision writes one decision log record. The input digest is computed
// here only, never on the path of an unlogged decision.
func (e *Engine) logDecision(ctx context.Context, p *compiled, in *Input, now time.Time, d Decision, cached bool, err error) {
	level := slog.LevelInfo
	if !d.Allow {
		level = slog.LevelWarn
	}
	if !e.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("event_type", "policy_decision"),
		slog.Bool("allow", d.Allow),
		slog.Any("reasons", d.Reasons),
		slog.Uint64("policy_version", d.Version),
		slog.String("policy_source", p.source),
		slog.String("action", string(in.Action)),
		slog.String("topic", in.Topic),
		slog.String("subject", in.Subject.DID),
		slog.String("input_digest", in.digest(inputTime(in, now))),
		slog.Bool("cached", cached),
	}
	if !d.Allow {
		attrs = append(attrs, slog.String("reason", strings.Join(d.Reasons, "; ")))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	e.log.LogAttrs(ctx, level, "policy decision", attrs...)
}

func inputTime(in *Input, now time.Time) time.Time {
	if in.Now.IsZero() {
		return now
	}
	return in.Now
}

// compiled is one policy in force: its modules compiled and its query
// prepared once, and its own decision cache, dropped with it on a swap.
type compiled struct {
	query   rego.PreparedEvalQuery
	version uint64
	source  string
	modules map[string]string
	cache   *cache // nil when caching is off
}

// query evaluates allow, and reasons only if allow is not true, in one
// prepared query: an allowed request (the common case) does not pay for the
// reason rules. The comprehensions make an undefined allow or reasons an
// empty list instead of an undefined result.
const query = `allow := [x | x := data.ztmesh.authz.allow]; reasons := [r | allow != [true]; some r in data.ztmesh.authz.reasons]`

var allowRef = ast.MustParseRef("data.ztmesh.authz.allow")

func (e *Engine) compile(modules map[string]string, version uint64, source string) (*compiled, error) {
	var s *sharedCompile
	var err error
	if e.shared != nil {
		// The shared modules are only read (Modules clones them).
		s, err = e.shared.get(modules, func() (rego.PreparedEvalQuery, error) { return prepare(modules) })
	} else {
		s = &sharedCompile{modules: maps.Clone(modules)}
		s.query, err = prepare(modules)
	}
	if err != nil {
		return nil, err
	}
	return &compiled{query: s.query, version: version, source: source, modules: s.modules, cache: newCache(e.cacheSize, e.cacheTTL)}, nil
}

// prepare compiles modules and prepares the decision query on them.
func prepare(modules map[string]string) (rego.PreparedEvalQuery, error) {
	c, err := compileModules(modules)
	if err != nil {
		return rego.PreparedEvalQuery{}, err
	}
	pq, err := rego.New(
		rego.Compiler(c),
		rego.Query(query),
		rego.SetRegoVersion(ast.RegoV1),
		rego.Capabilities(capabilities()),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(context.Background())
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("%w: prepare query: %v", ErrCompile, err)
	}
	return pq, nil
}

// reasonNone is the reason of a denial when the policy gives none.
var reasonNone = []string{"denied by policy (it gave no reason)"}

// decide evaluates in. Its error, if any, is also in the decision's reasons;
// a decision with an error is not cached.
func (p *compiled) decide(ctx context.Context, in *Input, now time.Time) (Decision, error) {
	if err := in.validate(); err != nil {
		return Decision{Reasons: []string{err.Error()}, Version: p.version}, err
	}
	if err := ctx.Err(); err != nil {
		return Decision{Reasons: []string{"policy error: " + err.Error()}, Version: p.version}, err
	}
	at := inputTime(in, now)
	rs, err := p.query.Eval(ctx,
		rego.EvalParsedInput(in.value(at)),
		rego.EvalTime(at),
		rego.EvalMetrics(metrics.NoOp()),
	)
	if err == nil && len(rs) != 1 {
		err = fmt.Errorf("undefined result (%d results)", len(rs))
	}
	if err != nil {
		return Decision{Reasons: []string{"policy error: " + oneLine(err.Error())}, Version: p.version}, err
	}
	allows, _ := rs[0].Bindings["allow"].([]any)
	d := Decision{Allow: len(allows) == 1 && allows[0] == true, Version: p.version}
	if d.Allow {
		return d, nil
	}
	given, _ := rs[0].Bindings["reasons"].([]any)
	if len(given) == 0 {
		d.Reasons = reasonNone
		return d, nil
	}
	d.Reasons = make([]string, 0, len(given))
	for _, r := range given {
		s, ok := r.(string)
		if !ok {
			s = fmt.Sprint(r)
		}
		d.Reasons = append(d.Reasons, s)
	}
	slices.Sort(d.Reasons)
	return d, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// DefaultModules returns the embedded default policy: default.rego. Its
// tests, default_test.rego, are kept in the source tree, not in the binary.
func DefaultModules() map[string]string {
	return map[string]string{"default.rego": defaultRego}
}
