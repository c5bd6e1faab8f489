package simulations

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ztmesh/ztmesh/internal/fsutil"
	"github.com/ztmesh/ztmesh/internal/yamltime"
	"github.com/ztmesh/ztmesh/node"
)

// maxScenarioSize caps a scenario file before it is parsed.
const maxScenarioSize = 64 << 10

// Scenario is one simulation, as declared in a YAML file in
// simulations/scenarios. Fields a kind does not use are ignored by it;
// unknown fields are errors, so a misspelt option is caught.
type Scenario struct {
	// Name names the report; Kind picks the code that runs it: fleet,
	// attacks, hardening, propagation or churn.
	Name        string `yaml:"name"`
	Kind        string `yaml:"kind"`
	Description string `yaml:"description"`
	// Seed makes topology, load and attacker choices reproducible.
	Seed uint64 `yaml:"seed"`

	// Nodes are the mesh sizes to run (a sweep gives a curve);
	// QuickNodes replaces them with --quick.
	Nodes      []int `yaml:"nodes"`
	QuickNodes []int `yaml:"quick_nodes"`
	// Zones is how many zones the nodes are spread over (round robin).
	Zones int `yaml:"zones"`
	// Degree is how many same-zone peers each node dials; Cross how many
	// random peers of any zone (they carry the control topic across zones).
	Degree int `yaml:"degree"`
	Cross  int `yaml:"cross"`
	// Trust is every honest node's credential trust score (default 0.9).
	Trust float64 `yaml:"trust"`

	Link LinkSpec `yaml:"link"`

	// MessageSize is the payload of each message in bytes; Rate is how
	// many messages each node publishes per second in its zone.
	MessageSize int     `yaml:"message_size"`
	Rate        float64 `yaml:"rate"`
	// MaxOffered caps a fleet size's offered load, in deliveries a second
	// (publications × zone peers): at a size where Rate would offer more,
	// every node publishes at the lower rate that offers MaxOffered, and
	// the report says so. 0: no cap.
	MaxOffered float64 `yaml:"max_offered"`
	// Duration is how long load runs per size (QuickDuration with --quick).
	Duration      Duration `yaml:"duration"`
	QuickDuration Duration `yaml:"quick_duration"`

	// Attacks lists the attacks of an attacks scenario (default: all).
	Attacks []string `yaml:"attacks"`
	// Attackers is how many attacker peers a hardening or Sybil attack uses.
	Attackers int `yaml:"attackers"`
	// ChurnPerMinute is the fraction of nodes that leave and rejoin per
	// minute in a churn scenario.
	ChurnPerMinute float64 `yaml:"churn_per_minute"`
	// RateLimit is every node's per-origin rate limit in an attacks
	// scenario, as rate_limit in ztmeshd's config: zero fields take the
	// node's defaults (200/s, bursts of 400).
	RateLimit node.RateLimit `yaml:"rate_limit"`
}

// LinkSpec is the link model in a scenario file.
type LinkSpec struct {
	Latency Duration `yaml:"latency"`
	// Bandwidth is per link direction, in bytes per second (0 = unlimited).
	Bandwidth float64 `yaml:"bandwidth"`
	// Transport is mocknet (default: in-memory links with the latency and
	// bandwidth above) or tcp (real TCP on 127.0.0.1, where latency and
	// bandwidth are the machine's; fleet scenarios only). Packet loss is
	// not modelled: mocknet links are reliable streams.
	Transport string `yaml:"transport"`
}

// Link returns the cluster link model.
func (l LinkSpec) Link() Link {
	return Link{Latency: time.Duration(l.Latency), Bandwidth: l.Bandwidth, TCP: l.Transport == "tcp"}
}

// Duration is a time.Duration written as "10s" in YAML.
type Duration = yamltime.Duration

// Kinds are the scenario kinds the runner knows.
var Kinds = []string{"fleet", "attacks", "hardening", "propagation", "churn"}

// LoadScenario reads and checks a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := fsutil.ReadFileLimited(path, maxScenarioSize)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	sc, err := ParseScenario(data)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if sc.Name == "" {
		sc.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return sc, nil
}

// ParseScenario decodes a scenario, refusing unknown fields, and fills in
// defaults.
func ParseScenario(data []byte) (*Scenario, error) {
	if len(data) > maxScenarioSize {
		return nil, fmt.Errorf("%d bytes, more than %d", len(data), maxScenarioSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		return nil, err
	}
	return &sc, sc.check()
}

func (sc *Scenario) check() error {
	var errs []error
	if !slices.Contains(Kinds, sc.Kind) {
		errs = append(errs, fmt.Errorf("kind %q: use one of %s", sc.Kind, strings.Join(Kinds, ", ")))
	}
	if len(sc.Nodes) == 0 {
		errs = append(errs, errors.New("nodes: give at least one mesh size"))
	}
	for _, n := range append(slices.Clone(sc.Nodes), sc.QuickNodes...) {
		if n < 2 || n > 20000 {
			errs = append(errs, fmt.Errorf("nodes: %d is outside 2..20000", n))
		}
	}
	if sc.Zones < 0 || sc.Degree < 0 || sc.Cross < 0 || sc.MessageSize < 0 || sc.Rate < 0 || sc.Attackers < 0 || !(sc.MaxOffered >= 0) {
		errs = append(errs, errors.New("zones, degree, cross, message_size, rate, max_offered and attackers must not be negative"))
	}
	if sc.MessageSize > 1<<20 {
		errs = append(errs, fmt.Errorf("message_size %d: at most 1 MiB (GossipSub's limit)", sc.MessageSize))
	}
	if sc.Trust < 0 || sc.Trust > 1 {
		errs = append(errs, fmt.Errorf("trust %v: want 0..1", sc.Trust))
	}
	if r := sc.RateLimit; math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) || r.Burst < 0 {
		errs = append(errs, fmt.Errorf("rate_limit %+v: want a finite per_second and a burst of at least 0", r))
	}
	if sc.ChurnPerMinute < 0 || sc.ChurnPerMinute > 1 {
		errs = append(errs, fmt.Errorf("churn_per_minute %v: want 0..1", sc.ChurnPerMinute))
	}
	switch sc.Link.Transport {
	case "", "mocknet":
	case "tcp":
		if sc.Kind != "fleet" {
			errs = append(errs, fmt.Errorf("link transport tcp: only fleet scenarios support it (the others cut and restore mocknet links)"))
		}
	default:
		errs = append(errs, fmt.Errorf("link transport %q: use mocknet or tcp", sc.Link.Transport))
	}
	if sc.Zones == 0 {
		sc.Zones = 1
	}
	if sc.Degree == 0 {
		sc.Degree = 6
	}
	if sc.Trust == 0 {
		sc.Trust = 0.9
	}
	if sc.Duration == 0 {
		sc.Duration = Duration(10 * time.Second)
	}
	if sc.QuickDuration == 0 {
		sc.QuickDuration = sc.Duration
	}
	if len(sc.QuickNodes) == 0 && len(sc.Nodes) > 0 {
		sc.QuickNodes = sc.Nodes[:1]
	}
	return errors.Join(errs...)
}

// Sizes returns the mesh sizes to run.
func (sc *Scenario) Sizes(quick bool) []int {
	if quick {
		return sc.QuickNodes
	}
	return sc.Nodes
}

// RunFor returns how long load runs.
func (sc *Scenario) RunFor(quick bool) time.Duration {
	if quick {
		return time.Duration(sc.QuickDuration)
	}
	return time.Duration(sc.Duration)
}

// Specs returns n honest node specs spread round robin over the zones.
func (sc *Scenario) Specs(n int) []NodeSpec {
	zones := Zones(sc.Zones)
	specs := make([]NodeSpec, n)
	for i := range specs {
		specs[i] = NodeSpec{Zones: []string{zones[i%len(zones)]}, Role: "vehicle", Trust: sc.Trust}
	}
	return specs
}
