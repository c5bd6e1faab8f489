package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestControlReset: without --yes it only says what it would do; with it,
// the state is moved aside, not deleted; a missing state is an error.
func TestControlReset(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "control")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(state, "bundle"), []byte("damaged"), 0o600)
	now := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	err := resetControl(dir, false, now, &out)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("without --yes: %v", err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("state moved without --yes: %v", err)
	}
	if err := resetControl(dir, true, now, &out); err != nil {
		t.Fatal(err)
	}
	aside := state + ".broken-20261206T020000Z"
	if data, err := os.ReadFile(filepath.Join(aside, "bundle")); err != nil || string(data) != "damaged" {
		t.Fatalf("state not kept at %s: %q %v", aside, data, err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state still in place: %v", err)
	}
	if err := resetControl(dir, true, now, &out); err == nil || !strings.Contains(err.Error(), "nothing to reset") {
		t.Fatalf("second reset: %v", err)
	}
}
