package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ztmesh/ztmesh/pubsub"
)

func TestExampleConfigParses(t *testing.T) {
	// The annotated example in docs/ must stay a valid config.
	c, err := LoadConfigFile(filepath.Join("..", "docs", "ztmeshd.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.Dir = t.TempDir() // the daemon's --dir
	// The example names /etc/ztmesh/revoked.jwt, which a node must find.
	c.Revocations = filepath.Join(c.Dir, "revoked.jwt")
	os.WriteFile(c.Revocations, nil, 0o644)
	c = c.WithDefaults()
	if _, err := c.parse(); err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.AuthGrace) != 10*time.Second || c.Mesh != "fleet" || len(c.Bootstrap) != 1 || *c.MDNS ||
		c.RateLimit != (RateLimit{PerSecond: 200, Burst: 400}) {
		t.Fatalf("example config read as %+v", c)
	}
}

func TestConfigRejectsUnknownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("mesh: fleet\nlisten_addrs: [x]\n"), 0o644)
	if _, err := LoadConfigFile(p); err == nil || !strings.Contains(err.Error(), "listen_addrs") {
		t.Fatalf("got %v", err)
	}
}

func TestEmptyConfigFileIsDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, nil, 0o644)
	if _, err := LoadConfigFile(p); err != nil {
		t.Fatal(err)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	c := Config{
		Listen:       []string{"not-a-multiaddr"},
		Bootstrap:    []string{"/ip4/127.0.0.1/tcp/1"}, // no /p2p
		TrustIssuers: []string{"did:web:example.com"},
		Mesh:         "Bad Mesh",
		API:          "tcp:0.0.0.0:80",
		LogLevel:     "chatty",
		RateLimit:    RateLimit{PerSecond: 10, Burst: -1},
	}.WithDefaults()
	_, err := c.parse()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"no data dir", "listen", "bootstrap", "trust issuer", "mesh name", "loopback", "log level", "rate limit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestConfigRateLimit(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want pubsub.RateLimit
	}{
		{"", pubsub.RateLimit{PerSecond: pubsub.DefaultRatePerSecond, Burst: pubsub.DefaultRateBurst}},
		{"rate_limit: {per_second: 50}", pubsub.RateLimit{PerSecond: 50, Burst: 100}},
		{"rate_limit: {per_second: 50, burst: 10}", pubsub.RateLimit{PerSecond: 50, Burst: 10}},
		{"rate_limit: {per_second: -1}", pubsub.RateLimit{PerSecond: -1}},
	} {
		c, err := parseConfig([]byte(tc.yaml + "\ntrust_issuers: [did:key:z6MkwVDfCg9LbbY6xjH3EZk8YSFQZujV5Y4y1ZWeER9tDiN3]\n"))
		if err != nil {
			t.Fatal(err)
		}
		c.Dir = t.TempDir()
		s, err := c.WithDefaults().parse()
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if s.rateLimit != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.yaml, s.rateLimit, tc.want)
		}
	}
	if _, err := parseConfig([]byte("rate_limit: {per_second: 5, bursts: 3}\n")); err == nil {
		t.Error("a misspelt rate_limit field was accepted")
	}
}

func FuzzParseConfig(f *testing.F) {
	data, _ := os.ReadFile(filepath.Join("..", "docs", "ztmeshd.example.yaml"))
	f.Add(data)
	f.Add([]byte("listen: [a, b]\nauth_grace: 1s\n"))
	f.Add([]byte("mdns: yes\nconn_low: -1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			return
		}
		c.Dir = "/tmp/x"
		_, _ = c.WithDefaults().parse() // must not panic, whatever it says
	})
}

// TestConfigFailsClosed: settings whose mistake would quietly weaken the
// node are refused with a reason that names the fix.
func TestConfigFailsClosed(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "revoked.jwt")
	os.WriteFile(existing, nil, 0o644)
	missing := filepath.Join(dir, "nope.jwt")
	base := Config{Dir: dir, TrustIssuers: []string{"did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"}}
	for _, tc := range []struct {
		name        string
		edit        func(*Config)
		wantErr     string // "" = accepted
		wantMetrics string
	}{
		{"metrics on loopback", func(c *Config) { c.Metrics = "127.0.0.1:9464" }, "", "127.0.0.1:9464"},
		{"metrics port only binds loopback", func(c *Config) { c.Metrics = ":9464" }, "", "127.0.0.1:9464"},
		{"metrics on all interfaces refused", func(c *Config) { c.Metrics = "0.0.0.0:9464" }, "--metrics-public", ""},
		{"metrics on all interfaces allowed", func(c *Config) { c.Metrics = "0.0.0.0:9464"; c.MetricsPublic = true }, "", "0.0.0.0:9464"},
		{"metrics not host:port", func(c *Config) { c.Metrics = "9464" }, "HOST:PORT", ""},
		{"revocations present", func(c *Config) { c.Revocations = existing }, "", ""},
		{"revocations missing", func(c *Config) { c.Revocations = missing }, "--allow-missing-revocations", ""},
		{"revocations missing, allowed", func(c *Config) { c.Revocations = missing; c.AllowMissingRevocations = true }, "", ""},
		{"attest interval too short", func(c *Config) { c.AttestInterval = Duration(time.Millisecond) }, "attest interval", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			s, err := c.WithDefaults().parse()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.metrics != tc.wantMetrics {
				t.Fatalf("metrics address %q, want %q", s.metrics, tc.wantMetrics)
			}
		})
	}
}
