package node

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/ztmesh/ztmesh/did"
	"github.com/ztmesh/ztmesh/pubsub"
)

// TestDirectoryEntryCost measures the heap one directory entry costs (set
// ZTMESH_DIR_MEM=N to run with N announcements): every node holds one for
// every member, so this times N² is a simulated mesh's floor.
func TestDirectoryEntryCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ZTMESH_DIR_MEM"))
	if n == 0 {
		t.Skip("set ZTMESH_DIR_MEM=N")
	}
	m := newMesh(t)
	a := m.start()
	var toks [][]byte
	for range n {
		id, _ := did.GenerateIdentity(rand.Reader)
		kp, err := pubsub.NewKeyPackage(id, pubsub.SuiteHybrid, m.clock.now())
		if err != nil {
			t.Fatal(err)
		}
		tok, _ := json.Marshal(announcement{V: 1, Credential: m.credFor(m.issuer, id, did.IssueOptions{Now: m.clock.now()}),
			KeyPackage: kp, Addrs: []string{"/ip4/10.1.2.3/tcp/4101", "/ip4/10.1.2.3/udp/4101/quic-v1"}})
		toks = append(toks, tok)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tok := range toks {
		if _, err := a.roster.ApplyMember("", tok); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("%d announcements (%d bytes each): %.0f bytes of heap per directory entry",
		n, len(toks[0]), float64(after.HeapAlloc-before.HeapAlloc)/float64(n))
	if p := os.Getenv("ZTMESH_DIR_HEAP"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	runtime.KeepAlive(toks)
}
