package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const aliceDID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"

// member is a subject in good standing in zone north.
func member() Subject {
	return Subject{
		DID:             aliceDID,
		Role:            "vehicle",
		TrustScore:      0.9,
		Zones:           []string{"north"},
		SoftwareVersion: "1.4.0",
		Capabilities:    []string{},
		CredentialID:    "urn:uuid:0c1d4a0e-7b52-4a4e-9d7c-2f7f0d5c1a11",
		ValidUntil:      t0.Add(12 * time.Hour),
	}
}

func zoneInput(action Action, zone string, s Subject) *Input {
	return &Input{
		Action: action, Mesh: "fleet", Zone: zone, Channel: "maps",
		Topic: "ztmesh/fleet/zone/" + zone + "/maps", Subject: s, Now: t0,
	}
}

func controlInput(action Action, s Subject) *Input {
	return &Input{
		Action: action, Mesh: "fleet", Zone: ControlZone, Channel: "control",
		Topic: "ztmesh/fleet/control", Subject: s, Now: t0,
	}
}

func with(s Subject, f func(*Subject)) Subject {
	f(&s)
	return s
}

// clock is a settable test clock.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}
func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }

func newEngine(t testing.TB, opts ...Option) *Engine {
	t.Helper()
	e, err := New(append([]Option{WithNow(newClock(t0).now)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDefaultPolicyRegoTests(t *testing.T) {
	tests, err := os.ReadFile("default_test.rego")
	if err != nil {
		t.Fatal(err)
	}
	results, err := RunTests(t.Context(), DefaultModules(), map[string]string{"default_test.rego": string(tests)})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 20 {
		t.Errorf("%d Rego tests ran, want the whole of default_test.rego", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s (%s) failed: err=%v output=%q", r.Name, r.Location, r.Err, r.Output)
		}
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tests string
		fail  string
	}{
		{"false assertion", "package t\nimport data.ztmesh.authz\ntest_ok if true\ntest_bad if authz.allow with input as {}\n", "data.t.test_bad"},
		{"builtin error", "package t\ntest_ok if true\ntest_bad if to_number(\"x\") == 1\n", "data.t.test_bad"},
		{"undefined", "package t\ntest_ok if true\ntest_bad if input.nothing\n", "data.t.test_bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results, err := RunTests(t.Context(), DefaultModules(), map[string]string{"t_test.rego": tc.tests})
			if err != nil {
				t.Fatal(err)
			}
			var failed []string
			for _, r := range results {
				if !r.Pass {
					failed = append(failed, r.Name)
				}
			}
			if !slices.Equal(failed, []string{tc.fail}) || len(results) != 2 {
				t.Errorf("failed %v of %d, want [%s] of 2", failed, len(results), tc.fail)
			}
		})
	}
}

func TestRunTestsRefusesBrokenPolicy(t *testing.T) {
	for _, tc := range []struct {
		name           string
		modules, tests map[string]string
	}{
		{"policy does not parse", map[string]string{"p.rego": "package ztmesh.authz\nallow if {"}, nil},
		{"policy has no allow", map[string]string{"p.rego": "package ztmesh.authz\nx := 1\n"}, nil},
		{"test does not compile", DefaultModules(), map[string]string{"t_test.rego": "package t\ntest_x if y\n"}},
		{"no modules", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := RunTests(t.Context(), tc.modules, tc.tests)
			if !errors.Is(err, ErrCompile) {
				t.Errorf("err = %v, want ErrCompile", err)
			}
		})
	}
}

func TestDefaultPolicyDecisions(t *testing.T) {
	// The cases vary claims under one credential ID, which a real credential
	// never does: decide each afresh.
	e := newEngine(t, WithCacheSize(0))
	m := member()
	for _, tc := range []struct {
		name   string
		in     *Input
		allow  bool
		reason string // substring of one reason
	}{
		{"member subscribes to own zone", zoneInput(ActionSubscribe, "north", m), true, ""},
		{"member relays own zone", zoneInput(ActionRelay, "north", m), true, ""},
		{"member publishes in own zone", zoneInput(ActionPublish, "north", m), true, ""},
		{"wildcard member subscribes anywhere", zoneInput(ActionSubscribe, "west", with(m, func(s *Subject) { s.Zones = []string{"*"} })), true, ""},
		{"non-member may not subscribe", zoneInput(ActionSubscribe, "south", m), false, `not a member of zone "south" for subscribe`},
		{"non-member may not relay", zoneInput(ActionRelay, "south", m), false, `not a member of zone "south" for relay`},
		{"low trust may not publish", zoneInput(ActionPublish, "north", with(m, func(s *Subject) { s.TrustScore = 0.3 })), false,
			"trust score 0.3 below minimum 0.5 for publish"},
		{"old software may not publish", zoneInput(ActionPublish, "north", with(m, func(s *Subject) { s.SoftwareVersion = "0.9.0" })), false,
			"software version 0.9.0 below minimum 1.0.0 for publish"},
		{"1.10.0 is newer than 1.0.0", zoneInput(ActionPublish, "north", with(m, func(s *Subject) { s.SoftwareVersion = "1.10.0" })), true, ""},
		{"any member subscribes to control", controlInput(ActionSubscribe, with(m, func(s *Subject) { s.TrustScore = 0.1 })), true, ""},
		{"vehicle may not publish on control", controlInput(ActionPublish, m), false, `role "vehicle" may not publish on the control channel`},
		{"operator publishes on control", controlInput(ActionPublish, with(m, func(s *Subject) { s.Role = "operator" })), true, ""},
		{"quarantined may not subscribe", zoneInput(ActionSubscribe, "north", with(m, func(s *Subject) { s.Quarantined = true })), false,
			"subject is quarantined: no subscribe"},
		{"quarantined operator may not publish on control", controlInput(ActionPublish, with(m, func(s *Subject) { s.Role = "operator"; s.Quarantined = true })), false,
			"subject is quarantined"},
		{"member writes own key", stateInput("north", aliceDID+"/position", m), true, ""},
		{"member may not write others' keys", stateInput("north", "did:key:z6MkOther/position", m), false, "is not under " + aliceDID + "/"},
		{"state admin writes any key", stateInput("north", "speed-limit", with(m, func(s *Subject) { s.Capabilities = []string{"state-admin"} })), true, ""},
		{"no state on control", &Input{Action: ActionStateWrite, Mesh: "fleet", Zone: ControlZone, Channel: "control", Topic: "ztmesh/fleet/control",
			State: "s", Key: aliceDID + "/k", Subject: m, Now: t0}, false, "state_write is not allowed on the control channel"},
		{"unknown action", zoneInput("delete", "north", m), false, `unknown action "delete"`},
		{"empty input", &Input{}, false, ""},
		{"non-finite trust score", zoneInput(ActionSubscribe, "north", with(m, func(s *Subject) { s.TrustScore = nan() })), false, "not a finite number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(t.Context(), tc.in)
			if d.Allow != tc.allow {
				t.Fatalf("allow = %v, want %v (reasons %q)", d.Allow, tc.allow, d.Reasons)
			}
			if !tc.allow && len(d.Reasons) == 0 {
				t.Errorf("denied without a reason")
			}
			if tc.allow && len(d.Reasons) != 0 {
				t.Errorf("allowed with reasons %q", d.Reasons)
			}
			if tc.reason != "" && !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, tc.reason) }) {
				t.Errorf("reasons %q, want one containing %q", d.Reasons, tc.reason)
			}
			if d.Version != 0 {
				t.Errorf("version %d, want 0 (embedded)", d.Version)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

func stateInput(zone, key string, s Subject) *Input {
	in := zoneInput(ActionStateWrite, zone, s)
	in.State, in.Key = "positions", key
	return in
}

// Policies that must deny however they go wrong.
func TestBrokenPoliciesDeny(t *testing.T) {
	for _, tc := range []struct {
		name, policy, reason string
	}{
		{"allow undefined", "package ztmesh.authz\nallow if input.nothing\n", "denied by policy (it gave no reason)"},
		{"allow not a boolean", "package ztmesh.authz\nallow := \"yes\"\n", "denied by policy"},
		{"allow conflicts", "package ztmesh.authz\nallow := true\nallow := false if input.action\n", "policy error"},
		{"builtin error", "package ztmesh.authz\nallow if to_number(input.action) > 0\n", "policy error"},
		{"reasons not strings", "package ztmesh.authz\nallow := false\nreasons contains 42\n", "42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			if err := e.LoadModules(map[string]string{"p.rego": tc.policy}, 7, "test"); err != nil {
				t.Fatal(err)
			}
			in := zoneInput(ActionPublish, "north", member())
			for range 2 { // and again, in case a bad decision was cached
				d := e.Decide(t.Context(), in)
				if d.Allow || d.Version != 7 {
					t.Fatalf("decision %+v, want a denial by version 7", d)
				}
				if !slices.ContainsFunc(d.Reasons, func(r string) bool { return strings.Contains(r, tc.reason) }) {
					t.Errorf("reasons %q, want one containing %q", d.Reasons, tc.reason)
				}
			}
		})
	}
}

func TestCancelledContextDenies(t *testing.T) {
	e := newEngine(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	in := zoneInput(ActionSubscribe, "north", member())
	if d := e.Decide(ctx, in); d.Allow || !strings.HasPrefix(d.Reasons[0], "policy error") {
		t.Fatalf("decision with a cancelled context: %+v, want a policy error", d)
	}
	// The error was not cached.
	if d := e.Decide(t.Context(), in); !d.Allow {
		t.Fatalf("after the cancelled decision: %+v, want allow", d)
	}
}

func TestLoadModulesCompileErrorKeepsPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		modules map[string]string
	}{
		{"parse error", map[string]string{"p.rego": "package ztmesh.authz\nallow if {\n"}},
		{"rego v0 syntax", map[string]string{"p.rego": "package ztmesh.authz\nallow { true }\n"}},
		{"unsafe variable", map[string]string{"p.rego": "package ztmesh.authz\nallow if x > 1\n"}},
		{"no allow rule", map[string]string{"p.rego": "package ztmesh.other\nallow := true\n"}},
		{"network builtin", map[string]string{"p.rego": "package ztmesh.authz\nallow if http.send({\"method\": \"GET\", \"url\": \"http://x\"}).status_code == 200\n"}},
		{"random builtin", map[string]string{"p.rego": "package ztmesh.authz\nallow if rand.intn(\"x\", 2) == 1\n"}},
		{"no modules", map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			err := e.LoadModules(tc.modules, 3, "test")
			if !errors.Is(err, ErrCompile) {
				t.Fatalf("err = %v, want ErrCompile", err)
			}
			if e.Version() != 0 || e.Source() != SourceEmbedded {
				t.Fatalf("policy in force: version %d from %s, want the embedded one", e.Version(), e.Source())
			}
			if d := e.Decide(t.Context(), zoneInput(ActionSubscribe, "north", member())); !d.Allow {
				t.Fatalf("old policy no longer decides: %+v", d)
			}
		})
	}
}

func TestCompileErrorsListEveryModule(t *testing.T) {
	err := Validate(map[string]string{
		"a.rego": "package ztmesh.authz\nallow if {\n",
		"b.rego": "package ztmesh.authz\nx if {\n",
	})
	if !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "a.rego:") || !strings.Contains(err.Error(), "b.rego:") {
		t.Fatalf("err = %v, want ErrCompile naming a.rego and b.rego", err)
	}
}

const allowAll = "package ztmesh.authz\nallow := true\n"
const denyAll = "package ztmesh.authz\nallow := false\nreasons contains \"closed\"\n"

func TestCache(t *testing.T) {
	clk := newClock(t0)
	e := newEngine(t, WithNow(clk.now), WithCacheTTL(time.Minute))
	ctx := t.Context()
	in := zoneInput(ActionSubscribe, "north", member())
	cacheLen := func() int { return e.cur.Load().cache.len() }

	if d := e.Decide(ctx, in); !d.Allow {
		t.Fatalf("first decision %+v", d)
	}
	if cacheLen() != 1 {
		t.Fatalf("cache has %d entries, want 1", cacheLen())
	}
	e.Decide(ctx, in)
	if cacheLen() != 1 {
		t.Fatalf("the same input cached twice")
	}

	t.Run("every key field is in the key", func(t *testing.T) {
		for name, f := range map[string]func(*Input){
			"action":       func(in *Input) { in.Action = ActionRelay },
			"topic":        func(in *Input) { in.Topic += "2" },
			"state":        func(in *Input) { in.State = "s" },
			"key":          func(in *Input) { in.Key = "k" },
			"credentialID": func(in *Input) { in.Subject.CredentialID = "urn:other" },
			"did":          func(in *Input) { in.Subject.DID = "did:key:other" },
			"trust score":  func(in *Input) { in.Subject.TrustScore = 0.2 },
			"attested":     func(in *Input) { in.Subject.Attested = true },
			"quarantined":  func(in *Input) { in.Subject.Quarantined = true },
		} {
			c := *in
			f(&c)
			if keyOf(&c) == keyOf(in) {
				t.Errorf("changing %s does not change the cache key", name)
			}
		}
		// A quarantine takes effect at once, cache or not.
		q := *in
		q.Subject.Quarantined = true
		if d := e.Decide(ctx, &q); d.Allow {
			t.Errorf("quarantined subject allowed from the cache")
		}
	})

	t.Run("no credential ID, no caching", func(t *testing.T) {
		e := newEngine(t)
		c := *in
		c.Subject.CredentialID = ""
		e.Decide(ctx, &c)
		if n := e.cur.Load().cache.len(); n != 0 {
			t.Errorf("cache has %d entries", n)
		}
	})

	t.Run("entries expire after the TTL", func(t *testing.T) {
		e := newEngine(t, WithNow(clk.now), WithCacheTTL(time.Minute))
		e.Decide(ctx, in)
		if _, ok := e.cur.Load().cache.get(ptr(keyOf(in)), clk.now().Add(59*time.Second)); !ok {
			t.Errorf("entry gone before the TTL")
		}
		if _, ok := e.cur.Load().cache.get(ptr(keyOf(in)), clk.now().Add(time.Minute)); ok {
			t.Errorf("entry alive after the TTL")
		}
	})

	t.Run("entries never outlive the credential", func(t *testing.T) {
		e := newEngine(t, WithNow(clk.now), WithCacheTTL(time.Hour))
		c := *in
		c.Subject.ValidUntil = clk.now().Add(10 * time.Second)
		e.Decide(ctx, &c)
		if _, ok := e.cur.Load().cache.get(ptr(keyOf(&c)), clk.now().Add(10*time.Second)); ok {
			t.Errorf("entry alive after the credential expired")
		}
		c.Subject.ValidUntil = clk.now().Add(-time.Second) // already expired: nothing cached
		c.Subject.CredentialID = "urn:expired"
		e.Decide(ctx, &c)
		if _, ok := e.cur.Load().cache.get(ptr(keyOf(&c)), clk.now()); ok {
			t.Errorf("decision for an expired credential cached")
		}
	})

	t.Run("a policy swap drops the cache", func(t *testing.T) {
		e := newEngine(t, WithNow(clk.now))
		if d := e.Decide(ctx, in); !d.Allow {
			t.Fatal("not allowed")
		}
		if err := e.LoadModules(map[string]string{"deny.rego": denyAll}, 1, "test"); err != nil {
			t.Fatal(err)
		}
		if d := e.Decide(ctx, in); d.Allow || d.Version != 1 || !slices.Equal(d.Reasons, []string{"closed"}) {
			t.Fatalf("after the swap: %+v, want denied by version 1", d)
		}
	})

	t.Run("size is bounded", func(t *testing.T) {
		e := newEngine(t, WithNow(clk.now), WithCacheSize(8))
		hot := *in
		hot.Subject.CredentialID = "urn:hot"
		for i := range 100 {
			c := *in
			c.Subject.CredentialID = fmt.Sprint("urn:", i)
			e.Decide(ctx, &c)
			e.Decide(ctx, &hot) // used between every insert: CLOCK keeps it
		}
		ch := e.cur.Load().cache
		if n := ch.len(); n != 8 || len(ch.ring) != 8 {
			t.Errorf("cache holds %d entries (ring %d), want 8", n, len(ch.ring))
		}
		if _, ok := ch.get(ptr(keyOf(&hot)), clk.now()); !ok {
			t.Errorf("the entry used all along was evicted")
		}
	})

	t.Run("off", func(t *testing.T) {
		for _, o := range []Option{WithCacheSize(0), WithCacheTTL(0)} {
			e := newEngine(t, o)
			if e.cur.Load().cache != nil {
				t.Errorf("cache on")
			}
			if d := e.Decide(ctx, in); !d.Allow {
				t.Errorf("decision without a cache: %+v", d)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestCacheHitDoesNotAllocate(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	in := zoneInput(ActionPublish, "north", member())
	e.Decide(ctx, in)
	if n := testing.AllocsPerRun(100, func() { e.Decide(ctx, in) }); n != 0 {
		t.Errorf("cache hit allocates %v times", n)
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]Option{
		"negative cache size": WithCacheSize(-1),
		"negative TTL":        WithCacheTTL(-time.Second),
		"nil clock":           WithNow(nil),
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

type logRecord struct {
	Level         string   `json:"level"`
	EventType     string   `json:"event_type"`
	Allow         bool     `json:"allow"`
	Reasons       []string `json:"reasons"`
	Reason        string   `json:"reason"`
	PolicyVersion uint64   `json:"policy_version"`
	PolicySource  string   `json:"policy_source"`
	Action        string   `json:"action"`
	Topic         string   `json:"topic"`
	Subject       string   `json:"subject"`
	InputDigest   string   `json:"input_digest"`
	Cached        bool     `json:"cached"`
	Error         string   `json:"error"`
}

func decisionLog(t *testing.T, buf *bytes.Buffer) []logRecord {
	t.Helper()
	var out []logRecord
	for line := range strings.Lines(buf.String()) {
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r.EventType == "policy_decision" {
			out = append(out, r)
		}
	}
	buf.Reset()
	return out
}

func TestDecisionLog(t *testing.T) {
	ctx := t.Context()
	allowed := zoneInput(ActionSubscribe, "north", member())
	denied := zoneInput(ActionPublish, "north", with(member(), func(s *Subject) { s.TrustScore = 0.3 }))

	t.Run("denials only", func(t *testing.T) {
		var buf bytes.Buffer
		e := newEngine(t, WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
		e.Decide(ctx, allowed)
		e.Decide(ctx, allowed)
		if recs := decisionLog(t, &buf); len(recs) != 0 {
			t.Errorf("allowed decisions logged: %+v", recs)
		}
		e.Decide(ctx, denied)
		e.Decide(ctx, denied) // from the cache: not logged again (no flood)
		recs := decisionLog(t, &buf)
		if len(recs) != 1 {
			t.Fatalf("%d denials logged, want 1 (cache hits are not re-logged)", len(recs))
		}
		canon, _ := json.Marshal(denied)
		sum := sha256.Sum256(canon)
		want := logRecord{
			Level: "WARN", EventType: "policy_decision", Allow: false,
			Reasons:       []string{"trust score 0.3 below minimum 0.5 for publish"},
			Reason:        "trust score 0.3 below minimum 0.5 for publish",
			PolicyVersion: 0, PolicySource: "embedded", Action: "publish", Topic: denied.Topic,
			Subject: aliceDID, InputDigest: hex.EncodeToString(sum[:]),
		}
		if !equalRecords(recs[0], want) {
			t.Errorf("log record\n got %+v\nwant %+v", recs[0], want)
		}
	})

	t.Run("all decisions", func(t *testing.T) {
		var buf bytes.Buffer
		e := newEngine(t, WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))), WithLogAllDecisions(true))
		e.Decide(ctx, allowed)
		e.Decide(ctx, allowed)
		e.Decide(ctx, denied)
		recs := decisionLog(t, &buf)
		if len(recs) != 3 || !recs[0].Allow || recs[0].Level != "INFO" || recs[0].Cached || !recs[1].Cached || recs[2].Allow {
			t.Errorf("log: %+v", recs)
		}
	})

	t.Run("errors", func(t *testing.T) {
		var buf bytes.Buffer
		e := newEngine(t, WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))))
		if err := e.LoadModules(map[string]string{"p.rego": "package ztmesh.authz\nallow if to_number(input.action) > 0\n"}, 1, "test"); err != nil {
			t.Fatal(err)
		}
		e.Decide(ctx, allowed)
		recs := decisionLog(t, &buf)
		if len(recs) != 1 || recs[0].Error == "" || recs[0].PolicyVersion != 1 {
			t.Errorf("log: %+v", recs)
		}
	})
}

func equalRecords(a, b logRecord) bool {
	return slices.Equal(a.Reasons, b.Reasons) && a.Level == b.Level && a.EventType == b.EventType &&
		a.Allow == b.Allow && a.Reason == b.Reason && a.PolicyVersion == b.PolicyVersion &&
		a.PolicySource == b.PolicySource && a.Action == b.Action && a.Topic == b.Topic &&
		a.Subject == b.Subject && a.InputDigest == b.InputDigest && a.Cached == b.Cached
}

func TestInputDigestIsCanonical(t *testing.T) {
	a := zoneInput(ActionSubscribe, "north", member())
	b := *a
	b.Now = a.Now.In(time.FixedZone("CET", 3600))
	b.Subject.Capabilities = nil
	if a.digest(a.Now) != b.digest(b.Now) {
		t.Errorf("the same input in another time zone, or with nil instead of no capabilities, digests differently")
	}
	b.Subject.TrustScore = 0.91
	if a.digest(a.Now) == b.digest(b.Now) {
		t.Errorf("different inputs digest the same")
	}
}

func TestLoadPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("authz.rego", "package ztmesh.authz\nimport data.ztmesh.lib\nallow if lib.open\n")
	write("lib/lib.rego", "package ztmesh.lib\nopen := true\n")
	write("authz_test.rego", "package ztmesh.authz_test\ntest_x if false\n") // a test: never served
	write(".git/x.rego", "this is not rego")                                 // hidden: skipped
	write("README.md", "not rego")

	e := newEngine(t)
	ctx := t.Context()
	in := zoneInput(ActionSubscribe, "nowhere", member())
	if err := e.LoadPath(dir); err != nil {
		t.Fatal(err)
	}
	if e.Version() != 1 || e.Source() != "file:"+dir {
		t.Fatalf("version %d from %s, want 1 from file:%s", e.Version(), e.Source(), dir)
	}
	if got := slices.Sorted(maps.Keys(e.Modules())); !slices.Equal(got, []string{"authz.rego", "lib/lib.rego"}) {
		t.Fatalf("modules %v", got)
	}
	if d := e.Decide(ctx, in); !d.Allow {
		t.Fatalf("file policy not in force: %+v", d)
	}

	// The same files again: nothing changes, the cache stays.
	cache := e.cur.Load().cache
	if err := e.LoadPath(dir); err != nil || e.Version() != 1 || e.cur.Load().cache != cache {
		t.Fatalf("reloading unchanged files: err %v, version %d", err, e.Version())
	}

	// A change takes effect on the next LoadPath.
	write("lib/lib.rego", "package ztmesh.lib\nopen := false\n")
	if err := e.LoadPath(dir); err != nil {
		t.Fatal(err)
	}
	if d := e.Decide(ctx, in); d.Allow || d.Version != 2 {
		t.Fatalf("changed file not in force: %+v", d)
	}

	// A broken file leaves the old policy working.
	write("lib/lib.rego", "package ztmesh.lib\nopen := \n")
	if err := e.LoadPath(dir); !errors.Is(err, ErrCompile) || !strings.Contains(err.Error(), "lib/lib.rego") {
		t.Fatalf("broken file: err = %v, want ErrCompile naming lib/lib.rego", err)
	}
	if d := e.Decide(ctx, in); d.Allow || d.Version != 2 {
		t.Fatalf("after a broken file: %+v, want version 2 still deciding", d)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadPath(dir); err == nil || e.Version() != 2 {
		t.Fatalf("missing dir: err %v, version %d", err, e.Version())
	}

	// A single file.
	file := filepath.Join(t.TempDir(), "open.rego")
	if err := os.WriteFile(file, []byte(allowAll), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadPath(file); err != nil || e.Version() != 3 || e.Source() != "file:"+file {
		t.Fatalf("single file: err %v, version %d, source %s", err, e.Version(), e.Source())
	}
}

func TestReadPathLimits(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := ReadPath(dir); err == nil {
		t.Errorf("empty directory accepted")
	}
	big := strings.Repeat("# padding\n", MaxBundleSize/10+1)
	if err := os.WriteFile(filepath.Join(dir, "big.rego"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadPath(dir); !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
}

// TestSwapIsAtomic decides while the policy flips between allow-all (odd
// versions) and deny-all (even versions): every decision must match the
// version that made it.
func TestSwapIsAtomic(t *testing.T) {
	e := newEngine(t, WithCacheSize(16))
	in := zoneInput(ActionSubscribe, "north", member())
	ctx := t.Context()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				d := e.Decide(ctx, in)
				if d.Version > 0 && d.Allow != (d.Version%2 == 1) {
					t.Errorf("version %d decided allow=%v", d.Version, d.Allow)
					return
				}
			}
		})
	}
	for v := uint64(1); v <= 40; v++ {
		src := denyAll
		if v%2 == 1 {
			src = allowAll
		}
		if err := e.LoadModules(map[string]string{"p.rego": src}, v, "test"); err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func TestNilInputDenies(t *testing.T) {
	if d := newEngine(t).Decide(t.Context(), nil); d.Allow {
		t.Fatal("nil input allowed")
	}
}
