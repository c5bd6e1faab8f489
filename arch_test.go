package ztmesh_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/mod/semver"
)

// TestDependencyDirection checks the package rules of the design: did,
// policy, crdt and attest never reach the network layer (libp2p hosts,
// swarm, transports, pubsub) nor the packages that compose it (node,
// pubsub). They may use go-libp2p/core's key and peer ID types. A package
// that does not exist yet is skipped.
func TestDependencyDirection(t *testing.T) {
	networking := []string{
		"github.com/libp2p/go-libp2p-pubsub",
		"github.com/libp2p/go-libp2p/p2p/",
		"github.com/libp2p/go-libp2p/core/host",
		"github.com/libp2p/go-libp2p/core/network",
		"github.com/ztmesh/ztmesh/node",
		"github.com/ztmesh/ztmesh/pubsub",
	}
	for _, pkg := range []string{"did", "policy", "crdt", "attest"} {
		if _, err := os.Stat(pkg); os.IsNotExist(err) {
			continue
		}
		out, err := exec.Command("go", "list", "-deps", "./"+pkg+"/...").CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, bad := range networking {
				if strings.HasPrefix(dep, bad) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// binariesDoNotLink fails t if ztmesh or ztmeshd links any package of the
// forbidden import paths.
func binariesDoNotLink(t *testing.T, forbidden ...string) {
	t.Helper()
	for _, cmd := range []string{"cmd/ztmesh", "cmd/ztmeshd"} {
		out, err := exec.Command("go", "list", "-deps", "./"+cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", cmd, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, bad := range forbidden {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s links %s", cmd, dep)
				}
			}
		}
	}
}

// TestBinariesDoNotLinkSimulator checks that the operator's ztmesh and the
// daemon ztmeshd link neither the simulator nor what only it needs
// (mocknet, the plotting library and its fonts): the simulations are the
// command ztmesh-sim.
func TestBinariesDoNotLinkSimulator(t *testing.T) {
	binariesDoNotLink(t,
		"github.com/ztmesh/ztmesh/simulations",
		"github.com/libp2p/go-libp2p/p2p/net/mock",
		"gonum.org/v1/plot",
	)
}

// TestBinariesDoNotLinkTestLibraries: testing libraries have no business in
// the operator's binaries (aries-framework-go's log component linked testify
// through a non-test file until it was replaced by internal/forks/aries-log),
// and go-jose, which parses every credential, is at a release with the fix
// for CVE-2024-28180 (GO-2024-2631), v3.0.3 or newer.
func TestBinariesDoNotLinkTestLibraries(t *testing.T) {
	binariesDoNotLink(t, "github.com/stretchr/testify", "go.uber.org/mock", "github.com/golang/mock")
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/go-jose/go-jose/v3").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -m go-jose: %v\n%s", err, out)
	}
	v := strings.TrimSpace(string(out))
	if semver.Compare(v, "v3.0.3") < 0 {
		t.Errorf("go-jose/v3 is %s: require v3.0.3 or newer (CVE-2024-28180)", v)
	}
}
