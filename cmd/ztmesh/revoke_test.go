package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/ztmesh/ztmesh/did"
)

// TestRevokeConcurrent runs ten `cred revoke` on one list at once: every
// subject must be in the final list (before the list was locked, runs that
// read the same version overwrote each other's subjects).
func TestRevokeConcurrent(t *testing.T) {
	dir := t.TempDir()
	issuerDir := filepath.Join(dir, "issuer")
	var out, errOut bytes.Buffer
	if code := run([]string{"id", "init", "--dir", issuerDir}, &out, &errOut); code != 0 {
		t.Fatalf("id init: exit %d: %s", code, errOut.String())
	}
	issuer, err := did.LoadIdentity(issuerDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "revoked.jwt")
	const runs = 10
	subjects := make([]did.DID, runs)
	for i := range subjects {
		id, err := did.GenerateIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		subjects[i] = id.DID()
	}
	var wg sync.WaitGroup
	for _, s := range subjects {
		wg.Go(func() {
			var out, errOut bytes.Buffer
			args := []string{"cred", "revoke", "--issuer-dir", issuerDir, "--subject", s.String(), "--list", list}
			if code := run(args, &out, &errOut); code != 0 {
				t.Errorf("cred revoke %s: exit %d: %s", s, code, errOut.String())
			}
		})
	}
	wg.Wait()
	data, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	got, err := did.ParseRevocationList(bytes.TrimSpace(data), func(d did.DID) bool { return d == issuer.DID() })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subjects {
		if !slices.Contains(got.Subjects, s) {
			t.Errorf("subject %s missing from the final list", s)
		}
	}
	if got.Version != runs {
		t.Errorf("final list version %d, want %d (one per run)", got.Version, runs)
	}
}
