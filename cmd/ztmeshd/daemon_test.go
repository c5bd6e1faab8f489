//go:build integration

// Multi-process tests: real ztmeshd processes on 127.0.0.1, driven and
// observed through the ztmesh CLI and their JSON logs. Run with
// `go test -tags integration ./cmd/ztmeshd` (make test does).
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ztmesh-bin")
	if err != nil {
		panic(err)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/ztmesh/ztmesh/cmd/ztmesh", "github.com/ztmesh/ztmesh/cmd/ztmeshd")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("building binaries: " + err.Error())
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ztmesh runs the CLI and returns stdout; it fails the test on a non-zero exit.
func ztmesh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ztmeshErr(args...)
	if err != nil {
		t.Fatalf("ztmesh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func ztmeshErr(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(binDir, "ztmesh"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

type fleet struct {
	t      *testing.T
	root   string
	issuer string // DID
}

func newFleet(t *testing.T) *fleet {
	f := &fleet{t: t, root: t.TempDir()}
	ztmesh(t, "id", "init", "--dir", f.path("issuer"))
	f.issuer = strings.TrimSpace(ztmesh(t, "id", "show", "--dir", f.path("issuer"), "--did"))
	return f
}

func (f *fleet) path(name string) string { return filepath.Join(f.root, name) }

// agent creates an identity and a credential from issuerDir for it.
func (f *fleet) agent(name, issuerDir string, zones string) (dir, didStr string) {
	dir = f.path(name)
	ztmesh(f.t, "id", "init", "--dir", dir)
	didStr = strings.TrimSpace(ztmesh(f.t, "id", "show", "--dir", dir, "--did"))
	ztmesh(f.t, "cred", "issue", "--issuer-dir", issuerDir, "--subject", didStr, "--role", "vehicle",
		"--trust", "0.9", "--zones", zones, "--software-version", "1.4.0", "--out", filepath.Join(dir, "credential.jwt"))
	return dir, didStr
}

type daemon struct {
	t    *testing.T
	dir  string
	cmd  *exec.Cmd
	log  string
	addr string // first listen multiaddr with /p2p
	did  string
}

// start runs ztmeshd for dir and waits until its API answers.
func (f *fleet) start(dir string, args ...string) *daemon {
	f.t.Helper()
	d := &daemon{t: f.t, dir: dir, log: filepath.Join(dir, "daemon.log")}
	logf, err := os.Create(d.log)
	if err != nil {
		f.t.Fatal(err)
	}
	base := []string{"--dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--log-level", "debug"}
	d.cmd = exec.Command(filepath.Join(binDir, "ztmeshd"), append(base, args...)...)
	d.cmd.Stderr = logf
	if err := d.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		d.stop()
		logf.Close()
		d.checkLogIsJSON()
		if f.t.Failed() {
			d.dumpLog(200)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := ztmeshErr("status", "--dir", dir, "--json")
		if err == nil {
			var st struct {
				DID         string   `json:"did"`
				ListenAddrs []string `json:"listen_addrs"`
			}
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				f.t.Fatal(err)
			}
			d.addr, d.did = st.ListenAddrs[0], st.DID
			return d
		}
		if d.cmd.ProcessState != nil || time.Now().After(deadline) {
			logs, _ := os.ReadFile(d.log)
			f.t.Fatalf("ztmeshd for %s did not come up: %v\n%s", dir, err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLogIsJSON fails the test on any log line that is not a JSON object:
// go-libp2p's own logs once arrived as logfmt lines in the JSON log.
func (d *daemon) checkLogIsJSON() {
	data, _ := os.ReadFile(d.log)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			d.t.Errorf("ztmeshd %s wrote a log line that is not JSON: %q", d.dir, line)
			return
		}
	}
}

// dumpLog prints the last n lines of the daemon's log, so that a failure
// in CI shows what each daemon saw.
func (d *daemon) dumpLog(n int) {
	data, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	d.t.Logf("last %d log lines of ztmeshd %s:\n%s", len(lines), d.dir, strings.Join(lines, "\n"))
}

func (d *daemon) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
}

type peerEntry struct {
	DID      string  `json:"did"`
	Verified bool    `json:"verified"`
	Expires  string  `json:"expires"`
	Trust    float64 `json:"trust_score"`
}

func (d *daemon) peers() []peerEntry {
	d.t.Helper()
	var ps []peerEntry
	if err := json.Unmarshal([]byte(ztmesh(d.t, "peers", "--dir", d.dir, "--json")), &ps); err != nil {
		d.t.Fatal(err)
	}
	return ps
}

func (d *daemon) verified(didStr string) bool {
	for _, p := range d.peers() {
		if p.DID == didStr && p.Verified {
			return true
		}
	}
	return false
}

func (d *daemon) connected(didStr string) bool {
	for _, p := range d.peers() {
		if p.DID == didStr {
			return true
		}
	}
	return false
}

// logLine returns the first JSON log line containing every key=value.
func (d *daemon) logLine(kv map[string]string) map[string]any {
	data, _ := os.ReadFile(d.log)
	for _, line := range bytes.Split(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		ok := true
		for k, v := range kv {
			if s, _ := m[k].(string); !strings.Contains(s, v) {
				ok = false
			}
		}
		if ok {
			return m
		}
	}
	return nil
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func rssKB(t *testing.T, pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return -1
}

func TestThreeDaemonsVerifyEachOther(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	dirs := make([]string, 3)
	dids := make([]string, 3)
	for i := range dirs {
		dirs[i], dids[i] = f.agent("agent"+strconv.Itoa(i), issuerDir, "z1")
	}
	d0 := f.start(dirs[0], "--trust-issuer", f.issuer)
	d1 := f.start(dirs[1], "--trust-issuer", f.issuer, "--bootstrap", d0.addr)
	d2 := f.start(dirs[2], "--trust-issuer", f.issuer, "--bootstrap", d0.addr, "--bootstrap", d1.addr)
	ds := []*daemon{d0, d1, d2}
	for i, d := range ds {
		for j := range ds {
			if i != j {
				eventually(t, 10*time.Second, "daemon "+strconv.Itoa(i)+" verifies "+strconv.Itoa(j),
					func() bool { return d.verified(dids[j]) })
			}
		}
	}
	var st struct {
		PeersConnected int `json:"peers_connected"`
		PeersVerified  int `json:"peers_verified"`
	}
	json.Unmarshal([]byte(ztmesh(t, "status", "--dir", dirs[0], "--json")), &st)
	if st.PeersConnected != 2 || st.PeersVerified != 2 {
		t.Fatalf("status: %+v", st)
	}
	// Idle RSS of a daemon with two verified peers, for the record.
	time.Sleep(2 * time.Second)
	t.Logf("idle RSS of ztmeshd with 2 verified peers: %d KiB", rssKB(t, d0.cmd.Process.Pid))

	// Graceful shutdown: exit 0, API files removed, peers see it go.
	d2.cmd.Process.Signal(syscall.SIGTERM)
	if err := d2.cmd.Wait(); err != nil {
		t.Fatalf("ztmeshd exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirs[2], "api.addr")); !os.IsNotExist(err) {
		t.Fatal("api.addr left behind after shutdown")
	}
	eventually(t, 5*time.Second, "peers notice the shutdown", func() bool { return !d0.connected(dids[2]) })
}

func TestRefusedAndRevokedDaemons(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	rogueDir := f.path("rogue-issuer")
	ztmesh(t, "id", "init", "--dir", rogueDir)
	rogue := strings.TrimSpace(ztmesh(t, "id", "show", "--dir", rogueDir, "--did"))
	revFile := f.path("revoked.jwt")

	aDir, _ := f.agent("a", issuerDir, "z1")
	bDir, bDID := f.agent("b", issuerDir, "z1")
	cDir, cDID := f.agent("c", rogueDir, "z1") // credential from an issuer nobody pins but c itself

	a := f.start(aDir, "--trust-issuer", f.issuer, "--revocations", revFile, "--allow-missing-revocations", "--auth-grace", "2s")
	b := f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	c := f.start(cDir, "--trust-issuer", rogue, "--bootstrap", a.addr)

	eventually(t, 10*time.Second, "a verifies b", func() bool { return a.verified(bDID) })
	eventually(t, 10*time.Second, "a refuses c: untrusted issuer", func() bool {
		return a.logLine(map[string]string{"event_type": "handshake_refused", "reason": "untrusted issuer"}) != nil
	})
	if a.verified(cDID) {
		t.Fatal("c with a foreign-issuer credential is verified")
	}
	eventually(t, 5*time.Second, "c is told why it was refused", func() bool {
		return c.logLine(map[string]string{"event_type": "credential_refused_by_peer", "reason": "untrusted issuer"}) != nil
	})

	// Revoke b with the CLI; a watches the file and cuts b off within a second.
	ztmesh(t, "cred", "revoke", "--issuer-dir", issuerDir, "--subject", bDID, "--list", revFile)
	took := eventually(t, 2*time.Second, "a disconnects revoked b", func() bool { return !a.connected(bDID) })
	t.Logf("revoked daemon cut off %s after the revocation list was written", took)
	if took > time.Second {
		t.Errorf("revocation took %s, want within 1s", took)
	}
	if a.logLine(map[string]string{"event_type": "peer_dropped", "reason": "revoked"}) == nil {
		t.Error("no revoked drop in a's logs")
	}
	// b keeps trying to reconnect (bootstrap); the gater refuses it with the reason.
	eventually(t, 10*time.Second, "a's gater refuses b", func() bool {
		return a.logLine(map[string]string{"event_type": "connection_refused", "reason": "revoked"}) != nil
	})
	if a.verified(bDID) {
		t.Fatal("revoked b verified again")
	}
	_ = b
}

func TestRenewalThroughCLIKeepsConnection(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	aDir, _ := f.agent("a", issuerDir, "z1")
	bDir, bDID := f.agent("b", issuerDir, "z1")
	a := f.start(aDir, "--trust-issuer", f.issuer)
	f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	eventually(t, 10*time.Second, "a verifies b", func() bool { return a.verified(bDID) })

	renewed := f.path("renewed.jwt")
	ztmesh(t, "cred", "issue", "--issuer-dir", issuerDir, "--subject", bDID, "--role", "vehicle",
		"--trust", "0.95", "--zones", "z1", "--software-version", "1.5.0", "--ttl", "48h", "--out", renewed)
	out := ztmesh(t, "cred", "install", "--dir", bDir, renewed)
	if !strings.Contains(out, "running daemon") {
		t.Fatalf("install output: %s", out)
	}
	eventually(t, 5*time.Second, "a sees b's renewed credential", func() bool {
		for _, p := range a.peers() {
			if p.DID == bDID && p.Trust == 0.95 {
				return true
			}
		}
		return false
	})
	if a.logLine(map[string]string{"event_type": "credential_renewed"}) == nil {
		t.Error("no credential_renewed log line")
	}
	if a.logLine(map[string]string{"event_type": "peer_disconnected"}) != nil {
		t.Error("renewal dropped the connection")
	}

	// A credential for another node is refused by the running daemon.
	if out, err := ztmeshErr("cred", "install", "--dir", bDir, filepath.Join(aDir, "credential.jwt")); err == nil ||
		!strings.Contains(out, "subject mismatch") {
		t.Fatalf("installing a's credential into b: %v %s", err, out)
	}
}

func TestCredInstallOffline(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	aDir, aDID := f.agent("a", issuerDir, "z1")
	renewed := f.path("renewed.jwt")
	ztmesh(t, "cred", "issue", "--issuer-dir", issuerDir, "--subject", aDID, "--role", "vehicle",
		"--trust", "0.5", "--zones", "z2", "--software-version", "1.4.0", "--out", renewed)
	if out, err := ztmeshErr("cred", "install", "--dir", aDir, renewed); err == nil || !strings.Contains(out, "--trust-issuer") {
		t.Fatalf("offline install without issuers: %v %s", err, out)
	}
	out := ztmesh(t, "cred", "install", "--dir", aDir, "--trust-issuer", f.issuer, renewed)
	if !strings.Contains(out, "not running") {
		t.Fatalf("output: %s", out)
	}
	a := f.start(aDir, "--trust-issuer", f.issuer)
	if st := ztmesh(t, "status", "--dir", a.dir); !strings.Contains(st, "zones z2") {
		t.Fatalf("daemon did not start with the installed credential:\n%s", st)
	}
}

func TestZonesThroughCLI(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	aDir, _ := f.agent("a", issuerDir, "north")
	bDir, _ := f.agent("b", issuerDir, "north")
	cDir, cDID := f.agent("c", issuerDir, "south")
	a := f.start(aDir, "--trust-issuer", f.issuer)
	b := f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	f.start(cDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr, "--bootstrap", b.addr)
	eventually(t, 10*time.Second, "a verifies c", func() bool { return a.verified(cDID) })

	// b streams north/maps as JSON lines.
	sub := exec.Command(filepath.Join(binDir, "ztmesh"), "sub", "--dir", bDir, "--zone", "north", "--channel", "maps", "--json", "--count", "1")
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer sub.Process.Kill()
	lines := make(chan string, 1)
	go func() {
		buf := make([]byte, 64<<10)
		n, _ := out.Read(buf)
		lines <- string(buf[:n])
	}()
	var line string
	deadline := time.After(15 * time.Second)
publish:
	for {
		ztmesh(t, "pub", "--dir", aDir, "--zone", "north", "--channel", "maps", "hello north")
		select {
		case line = <-lines:
			break publish
		case <-time.After(300 * time.Millisecond):
		case <-deadline:
			t.Fatal("b's ztmesh sub printed nothing")
		}
	}
	var m struct {
		Origin, Zone, Channel string
		Seq                   uint64
		Time                  string
		Data                  []byte
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &m); err != nil {
		t.Fatalf("sub output %q: %v", line, err)
	}
	if m.Origin != a.did || m.Zone != "north" || m.Channel != "maps" || string(m.Data) != "hello north" || m.Seq == 0 || m.Time == "" {
		t.Fatalf("delivered %+v", m)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("ztmesh sub --count 1: %v", err)
	}

	// c is not in north: its own daemon's policy refuses.
	if out, err := ztmeshErr("pub", "--dir", cDir, "--zone", "north", "--channel", "maps", "x"); err == nil || !strings.Contains(out, "denied") {
		t.Fatalf("pub outside the zone: %v %s", err, out)
	}
	if out, err := ztmeshErr("sub", "--dir", cDir, "--zone", "north", "--channel", "maps"); err == nil || !strings.Contains(out, "denied") {
		t.Fatalf("sub outside the zone: %v %s", err, out)
	}

	// A signed policy bundle pushed through b reaches every daemon.
	polDir := f.path("policy")
	os.MkdirAll(polDir, 0o755)
	os.WriteFile(filepath.Join(polDir, "frozen.rego"), []byte("package ztmesh.authz\n\ndefault allow := false\n\nallow if input.action == \"subscribe\"\n\nreasons contains \"publishing is frozen\" if input.action == \"publish\"\n"), 0o644)
	bundle := f.path("frozen.bundle")
	ztmesh(t, "policy", "sign", "--issuer-dir", issuerDir, "--version", "5", "--out", bundle, polDir)
	ztmesh(t, "policy", "push", "--dir", bDir, bundle)
	for _, dir := range []string{aDir, bDir, cDir} {
		eventually(t, 5*time.Second, "bundle version 5 in force at "+dir, func() bool {
			return strings.Contains(ztmesh(t, "status", "--dir", dir), "version 5")
		})
	}
	if out, err := ztmeshErr("pub", "--dir", aDir, "--zone", "north", "--channel", "maps", "x"); err == nil || !strings.Contains(out, "frozen") {
		t.Fatalf("pub under the frozen policy: %v %s", err, out)
	}

	// A revocation published through a reaches b, which cuts c off.
	ztmesh(t, "cred", "revoke", "--issuer-dir", issuerDir, "--subject", cDID, "--list", f.path("rev.jwt"), "--publish", "--dir", aDir)
	took := eventually(t, 5*time.Second, "b drops c", func() bool { return !b.connected(cDID) })
	t.Logf("revocation published through a cut c off at b after %s", took)
}

func TestStateThroughCLISurvivesSIGKILL(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	aDir, aDID := f.agent("a", issuerDir, "north")
	bDir, bDID := f.agent("b", issuerDir, "north")
	cDir, _ := f.agent("c", issuerDir, "south")
	a := f.start(aDir, "--trust-issuer", f.issuer)
	b := f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	f.start(cDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	eventually(t, 10*time.Second, "a verifies b", func() bool { return a.verified(bDID) })

	get := func(dir, key string) string {
		out, err := ztmeshErr("state", "get", "--dir", dir, "--zone", "north", "hazards", key)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(out)
	}
	// Open the state on both (a replica opens on first use), then write.
	get(aDir, "x")
	get(bDir, "x")
	ztmesh(t, "state", "put", "--dir", aDir, "--zone", "north", "hazards", aDID+"/h1", "ice on bridge")
	eventually(t, 10*time.Second, "b reads a's write", func() bool { return get(bDir, aDID+"/h1") == "ice on bridge" })
	ztmesh(t, "state", "put", "--dir", bDir, "--zone", "north", "hazards", bDID+"/k1", "acknowledged")

	// SIGKILL b; a keeps writing; b restarts and has both its acknowledged
	// write and what it missed.
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	b.cmd.Wait()
	ztmesh(t, "state", "put", "--dir", aDir, "--zone", "north", "hazards", aDID+"/h2", "missed while down")
	b2 := f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	if v := get(bDir, bDID+"/k1"); v != "acknowledged" {
		t.Fatalf("acknowledged write after SIGKILL: %q", v)
	}
	eventually(t, 15*time.Second, "restarted b catches up", func() bool { return get(bDir, aDID+"/h2") == "missed while down" })
	list := ztmesh(t, "state", "list", "--dir", bDir, "--zone", "north", "hazards")
	if !strings.Contains(list, "ice on bridge") || !strings.Contains(list, "missed while down") || !strings.Contains(list, "acknowledged") {
		t.Fatalf("state list after restart:\n%s", list)
	}
	_ = b2

	// b may not write under a's DID; c is not in north at all.
	if out, err := ztmeshErr("state", "put", "--dir", bDir, "--zone", "north", "hazards", aDID+"/h1", "forged"); err == nil || !strings.Contains(out, "denied") {
		t.Fatalf("write under another node's DID: %v %s", err, out)
	}
	if out, err := ztmeshErr("state", "get", "--dir", cDir, "--zone", "north", "hazards", aDID+"/h1"); err == nil || !strings.Contains(out, "denied") {
		t.Fatalf("read by a non-member: %v %s", err, out)
	}
}

func TestAttestationQuarantinesModifiedBinary(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	// A modified daemon: the same program with bytes appended, so it runs
	// but its hash is not the approved one.
	orig := filepath.Join(binDir, "ztmeshd")
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	modified := f.path("ztmeshd-modified")
	if err := os.WriteFile(modified, append(data, []byte("tampered")...), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	ref := f.path("reference.json")
	ztmesh(t, "attest", "reference", "--issuer-dir", issuerDir, "--version", "1", "--allow-binary", hex.EncodeToString(sum[:]), "--out", ref)

	aDir, _ := f.agent("a", issuerDir, "north")
	bDir, bDID := f.agent("b", issuerDir, "north")
	xDir, xDID := f.agent("x", issuerDir, "north")
	a := f.start(aDir, "--trust-issuer", f.issuer, "--attest-interval", "1s")
	f.start(bDir, "--trust-issuer", f.issuer, "--attest-interval", "1s", "--bootstrap", a.addr)
	saved := binDir
	binDir = t.TempDir()
	os.Symlink(modified, filepath.Join(binDir, "ztmeshd"))
	os.Symlink(filepath.Join(saved, "ztmesh"), filepath.Join(binDir, "ztmesh"))
	f.start(xDir, "--trust-issuer", f.issuer, "--attest-interval", "1s", "--bootstrap", a.addr)
	binDir = saved
	eventually(t, 10*time.Second, "a verifies x", func() bool { return a.verified(xDID) && a.verified(bDID) })

	ztmesh(t, "attest", "push", "--dir", aDir, ref)
	type entry struct {
		DID              string  `json:"did"`
		EffectiveTrust   float64 `json:"effective_trust"`
		Quarantined      bool    `json:"quarantined"`
		QuarantineReason string  `json:"quarantine_reason"`
	}
	state := func(d string) entry {
		var ps []entry
		json.Unmarshal([]byte(ztmesh(t, "peers", "--dir", aDir, "--json")), &ps)
		for _, p := range ps {
			if p.DID == d {
				return p
			}
		}
		return entry{}
	}
	eventually(t, 10*time.Second, "a quarantines the modified daemon", func() bool { return state(xDID).Quarantined })
	if x := state(xDID); !strings.Contains(x.QuarantineReason, "binary") || x.EffectiveTrust != 0 {
		t.Fatalf("x: %+v", x)
	}
	eventually(t, 5*time.Second, "b passes attestation", func() bool { return state(bDID).EffectiveTrust > 0.5 })
	if state(bDID).Quarantined {
		t.Fatal("the approved daemon was quarantined")
	}
}

// TestRestartKeepsRevocationAndBundleFloor: a revocation and a policy
// bundle accepted from the mesh survive a restart of b, a clean stop or a
// SIGKILL: restarted with the revoked c as its only bootstrap peer, b
// refuses c as revoked, still runs bundle version 2, and refuses the
// superseded version 1 as a rollback.
func TestRestartKeepsRevocationAndBundleFloor(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	aDir, _ := f.agent("a", issuerDir, "north")
	bDir, bDID := f.agent("b", issuerDir, "north")
	cDir, cDID := f.agent("c", issuerDir, "north")
	a := f.start(aDir, "--trust-issuer", f.issuer)
	b := f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	c := f.start(cDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr, "--bootstrap", b.addr)
	eventually(t, 10*time.Second, "b verifies c", func() bool { return b.verified(cDID) })
	eventually(t, 10*time.Second, "a verifies b", func() bool { return a.verified(bDID) })

	bundle := func(version, rego string) string {
		dir := f.path("policy-v" + version)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "p.rego"), []byte(rego), 0o644)
		out := f.path("v" + version + ".bundle")
		ztmesh(t, "policy", "sign", "--issuer-dir", issuerDir, "--version", version, "--out", out, dir)
		return out
	}
	v1 := bundle("1", "package ztmesh.authz\n\nallow := true\n")
	v2 := bundle("2", "package ztmesh.authz\n\ndefault allow := false\n\nallow if input.action == \"subscribe\"\n")

	ztmesh(t, "cred", "revoke", "--issuer-dir", issuerDir, "--subject", cDID, "--list", f.path("rev.jwt"), "--publish", "--dir", aDir)
	eventually(t, 10*time.Second, "b applies the revocation from the mesh", func() bool {
		return b.logLine(map[string]string{"event_type": "revocations_applied", "source": "mesh"}) != nil
	})
	ztmesh(t, "policy", "push", "--dir", aDir, v2)
	eventually(t, 10*time.Second, "b runs bundle version 2", func() bool {
		return strings.Contains(ztmesh(t, "status", "--dir", bDir), "version 2")
	})

	for _, kill := range []bool{false, true} {
		if kill {
			if err := b.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			b.cmd.Wait()
		} else {
			b.stop()
		}
		b = f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", c.addr)
		if st := ztmesh(t, "status", "--dir", bDir); !strings.Contains(st, "version 2") {
			t.Fatalf("kill=%v: b after restart:\n%s", kill, st)
		}
		took := eventually(t, 10*time.Second, "restarted b refuses c as revoked", func() bool {
			return b.logLine(map[string]string{"event_type": "connection_refused", "reason": "revoked"}) != nil
		})
		t.Logf("kill=%v: restarted b refused revoked c %s after its API answered", kill, took)
		if b.verified(cDID) {
			t.Fatalf("kill=%v: restarted b verified revoked c", kill)
		}
		out, err := ztmeshErr("policy", "push", "--dir", bDir, v1)
		if err == nil || !strings.Contains(out, "rollback") {
			t.Fatalf("kill=%v: pushing superseded bundle v1 to restarted b: %v %s", kill, err, out)
		}
		if st := ztmesh(t, "status", "--dir", bDir); !strings.Contains(st, "version 2") {
			t.Fatalf("kill=%v: b after the rollback attempt:\n%s", kill, st)
		}
	}
}

// TestSubSurvivesDaemonRestart: `ztmesh sub` whose daemon restarts says so
// on stderr and goes on streaming from the new daemon (it used to print
// "unexpected EOF" and exit).
func TestSubSurvivesDaemonRestart(t *testing.T) {
	f := newFleet(t)
	issuerDir := f.path("issuer")
	aDir, _ := f.agent("a", issuerDir, "north")
	bDir, bDID := f.agent("b", issuerDir, "north")
	a := f.start(aDir, "--trust-issuer", f.issuer)
	b := f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	eventually(t, 10*time.Second, "a verifies b", func() bool { return a.verified(bDID) })

	var stdout, stderr syncBuffer
	sub := exec.Command(filepath.Join(binDir, "ztmesh"), "sub", "--dir", bDir, "--zone", "north", "--channel", "maps", "--count", "2")
	sub.Stdout, sub.Stderr = &stdout, &stderr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sub.Wait() }()
	defer sub.Process.Kill()
	publishUntil := func(what string, cond func() bool) {
		t.Helper()
		eventually(t, 20*time.Second, "sub prints "+what, func() bool {
			if cond() {
				return true
			}
			ztmeshErr("pub", "--dir", aDir, "--zone", "north", "--channel", "maps", what)
			return cond()
		})
	}
	publishUntil("before", func() bool { return strings.Contains(stdout.String(), "before") })

	b.stop()
	eventually(t, 10*time.Second, "sub notices the daemon went away", func() bool {
		return strings.Contains(stderr.String(), "went away")
	})
	b = f.start(bDir, "--trust-issuer", f.issuer, "--bootstrap", a.addr)
	eventually(t, 10*time.Second, "a verifies b again", func() bool { return a.verified(bDID) })
	publishUntil("after", func() bool { return strings.Contains(stdout.String(), "after") })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ztmesh sub --count 2 after a restart: %v (stderr %q)", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ztmesh sub did not exit after its second message")
	}
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
