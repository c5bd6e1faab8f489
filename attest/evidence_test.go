package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the test vectors in testdata")

func TestSignParseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *Measurement
		tpm  TPM
	}{
		{"software-only", testMeasurement(), nil},
		{"with TPM quote", testMeasurement(), newSoftTPM(t)},
		{"200 dependencies", bigMeasurement(200), nil},
		{"replaced module", func() *Measurement {
			m := testMeasurement()
			m.Deps[1].Replace = &Module{Path: "../libp2p-fork"}
			return m
		}(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := signed(t, tc.m, tc.tpm)
			e := parsed(t, ev)
			if e.Subject != testIdentity(t, 1).DID() || !bytes.Equal(e.Nonce, testNonce(7)) || !e.Time.Equal(t0) {
				t.Errorf("subject, nonce or time changed: %v %x %v", e.Subject, e.Nonce, e.Time)
			}
			if !reflect.DeepEqual(e.Measurement, *tc.m) {
				t.Errorf("measurement changed:\n got %+v\nwant %+v", e.Measurement, *tc.m)
			}
			if (e.Hardware != nil) != (tc.tpm != nil) {
				t.Errorf("hardware section present = %v, want %v", e.Hardware != nil, tc.tpm != nil)
			}
			if !bytes.Equal(e.Raw, ev) {
				t.Error("Raw is not the evidence as received")
			}
		})
	}
}

// TestEvidenceVector checks the wire format against testdata: a change to
// the encoding breaks every deployed verifier, so it must be deliberate
// (go test -run Vector -update, and a new context version).
func TestEvidenceVector(t *testing.T) {
	path := filepath.Join("testdata", "evidence-v1.json")
	ev := signed(t, testMeasurement(), nil)
	if *update {
		if err := os.WriteFile(path, append(ev, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev, bytes.TrimSpace(want)) {
		t.Errorf("Sign no longer produces %s:\n got %s\nwant %s", path, ev, want)
	}
	if _, err := ParseEvidence(want, t0, time.Minute); err != nil {
		t.Errorf("the vector does not parse: %v", err)
	}
}

func TestParseEvidenceRejects(t *testing.T) {
	good := signed(t, testMeasurement(), nil)
	withTPM := signed(t, testMeasurement(), newSoftTPM(t))
	other := testIdentity(t, 2)
	now := t0.Add(time.Second)

	resign := func(ev []byte, edit func(p map[string]any)) []byte {
		// A forger who edits the payload and signs it with its own key.
		out := editPayload(t, ev, edit)
		var env evidenceEnvelope
		json.Unmarshal(out, &env)
		payload, _ := b64.DecodeString(env.Payload)
		section, _ := b64.DecodeString(env.TPM)
		env.Signature = b64.EncodeToString(other.Sign(EvidenceContext, signedMessage(payload, section)))
		out, _ = json.Marshal(env)
		return out
	}
	resignRaw := func(ev []byte, edit func(payload string) string) []byte {
		var env evidenceEnvelope
		json.Unmarshal(ev, &env)
		payload, _ := b64.DecodeString(env.Payload)
		payload = []byte(edit(string(payload)))
		env.Payload = b64.EncodeToString(payload)
		env.Signature = b64.EncodeToString(testIdentity(t, 1).Sign(EvidenceContext, signedMessage(payload, nil)))
		out, _ := json.Marshal(env)
		return out
	}
	setEnv := func(ev []byte, edit func(env *evidenceEnvelope)) []byte {
		var env evidenceEnvelope
		json.Unmarshal(ev, &env)
		edit(&env)
		out, _ := json.Marshal(env)
		return out
	}

	for _, tc := range []struct {
		name   string
		data   []byte
		now    time.Time
		maxAge time.Duration
		want   error
	}{
		{"tampered binary hash", editPayload(t, good, func(p map[string]any) { p["binary_sha256"] = hash("evil") }), now, time.Minute, ErrBadSignature},
		{"tampered dependency version", editPayload(t, good, func(p map[string]any) {
			p["deps"].([]any)[2].(map[string]any)["version"] = "v0.99.0"
		}), now, time.Minute, ErrBadSignature},
		{"tampered time to look fresh", editPayload(t, good, func(p map[string]any) { p["time"] = t0.Add(time.Hour).Format(time.RFC3339Nano) }), t0.Add(time.Hour), time.Minute, ErrBadSignature},
		{"wrong subject key: another node's DID on our signature", editPayload(t, good, func(p map[string]any) { p["subject"] = other.DID().String() }), now, time.Minute, ErrBadSignature},
		{"signed by a key that is not the subject's", resign(good, func(map[string]any) {}), now, time.Minute, ErrBadSignature},
		{"signature under another context", setEnv(good, func(env *evidenceEnvelope) {
			payload, _ := b64.DecodeString(env.Payload)
			env.Signature = b64.EncodeToString(testIdentity(t, 1).Sign(ReferenceContext, signedMessage(payload, nil)))
		}), now, time.Minute, ErrBadSignature},
		{"tpm section stripped from hardware evidence", setEnv(withTPM, func(env *evidenceEnvelope) { env.TPM = "" }), now, time.Minute, ErrMalformed},
		{"tpm section moved to software-only evidence", setEnv(good, func(env *evidenceEnvelope) {
			var w evidenceEnvelope
			json.Unmarshal(withTPM, &w)
			env.TPM = w.TPM
		}), now, time.Minute, ErrMalformed},
		{"tpm section swapped under a valid payload", setEnv(withTPM, func(env *evidenceEnvelope) {
			var w evidenceEnvelope
			json.Unmarshal(signed(t, testMeasurement(), newSoftTPM(t)), &w)
			env.TPM = w.TPM
		}), now, time.Minute, ErrBadSignature},
		{"stale", good, t0.Add(time.Minute + time.Second), time.Minute, ErrStale},
		{"future beyond clock skew", good, t0.Add(-MaxClockSkew - time.Second), time.Minute, ErrFuture},
		{"maximum age not positive", good, now, 0, ErrStale},
		{"oversized", append(good, bytes.Repeat([]byte(" "), MaxEvidenceSize)...), now, time.Minute, ErrTooLarge},
		{"not JSON", []byte("evidence, trust me"), now, time.Minute, ErrMalformed},
		{"unknown envelope field", []byte(strings.Replace(string(good), `{"payload"`, `{"x":1,"payload"`, 1)), now, time.Minute, ErrMalformed},
		{"trailing data", append(bytes.Clone(good), "{}"...), now, time.Minute, ErrMalformed},
		{"space inside the envelope", []byte(strings.Replace(string(good), `,"signature"`, `, "signature"`, 1)), now, time.Minute, ErrMalformed},
		{"duplicate key", []byte(strings.Replace(string(good), `{"payload"`, `{"signature":"","payload"`, 1)), now, time.Minute, ErrMalformed},
		{"short signature", setEnv(good, func(env *evidenceEnvelope) { env.Signature = "AAAA" }), now, time.Minute, ErrMalformed},
		{"unknown payload field, validly signed", resignRaw(good, func(p string) string { return strings.Replace(p, `{"subject"`, `{"admin":true,"subject"`, 1) }), now, time.Minute, ErrMalformed},
		{"field name in another case, validly signed", resignRaw(good, func(p string) string { return strings.Replace(p, `"binary_sha256"`, `"Binary_SHA256"`, 1) }), now, time.Minute, ErrMalformed},
		{"space in the payload, validly signed", resignRaw(good, func(p string) string { return strings.Replace(p, `,"time"`, `, "time"`, 1) }), now, time.Minute, ErrMalformed},
		{"nonce too short", resign(good, func(p map[string]any) { p["nonce"] = "AAAA" }), now, time.Minute, ErrMalformed},
		{"time with an offset is not canonical", resign(good, func(p map[string]any) { p["time"] = "2026-11-27T11:00:00+01:00" }), now, time.Minute, ErrMalformed},
		{"binary hash in upper case", resign(good, func(p map[string]any) { p["binary_sha256"] = strings.ToUpper(hash("x")) }), now, time.Minute, ErrMalformed},
		{"dependencies out of order", resign(good, func(p map[string]any) {
			d := p["deps"].([]any)
			d[0], d[1] = d[1], d[0]
		}), now, time.Minute, ErrMalformed},
		{"unknown root of trust", resign(good, func(p map[string]any) { p["root_of_trust"] = "sgx" }), now, time.Minute, ErrMalformed},
		{"negative uptime", resign(good, func(p map[string]any) { p["uptime_ms"] = -1 }), now, time.Minute, ErrMalformed},
		{"control character in a module path", resign(good, func(p map[string]any) {
			p["deps"].([]any)[0].(map[string]any)["path"] = "a\x1b[31m"
		}), now, time.Minute, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEvidence(tc.data, tc.now, tc.maxAge)
			t.Log(err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseEvidenceAcceptsAtTheLimits(t *testing.T) {
	ev := signed(t, testMeasurement(), nil)
	for _, now := range []time.Time{t0.Add(time.Minute), t0.Add(-MaxClockSkew)} {
		if _, err := ParseEvidence(ev, now, time.Minute); err != nil {
			t.Errorf("at %v: %v", now, err)
		}
	}
	if _, err := ParseEvidence(append([]byte("\n"), append(ev, '\n')...), t0, time.Minute); err != nil {
		t.Errorf("surrounding space: %v", err)
	}
}

func TestSignRefuses(t *testing.T) {
	id := testIdentity(t, 1)
	for _, tc := range []struct {
		name  string
		m     *Measurement
		nonce []byte
		tpm   TPM
		want  error
	}{
		{"nonce too short", testMeasurement(), make([]byte, MinNonceSize-1), nil, ErrMalformed},
		{"nonce too long", testMeasurement(), make([]byte, MaxNonceSize+1), nil, ErrMalformed},
		{"no measurement", nil, testNonce(1), nil, ErrMalformed},
		{"binary hash missing", func() *Measurement { m := testMeasurement(); m.BinarySHA256 = ""; return m }(), testNonce(1), nil, ErrMalformed},
		{"dependencies unsorted", func() *Measurement {
			m := testMeasurement()
			m.Deps[0], m.Deps[1] = m.Deps[1], m.Deps[0]
			return m
		}(), testNonce(1), nil, ErrMalformed},
		{"too many dependencies", bigMeasurement(maxDeps + 1), testNonce(1), nil, ErrMalformed},
		{"TPM quote without PCRs", testMeasurement(), testNonce(1), lyingTPM{newSoftTPM(t), func(q *TPMQuote) { q.PCRs = nil }}, ErrMalformed},
		{"TPM fails", testMeasurement(), testNonce(1), lyingTPM{failingTPM{}, nil}, ErrTPM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Sign(id, tc.m, tc.nonce, t0, tc.tpm); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

type failingTPM struct{}

func (failingTPM) Quote([]byte) (*TPMQuote, error) { return nil, errors.New("TPM is in lockout") }
func (failingTPM) Close() error                    { return nil }
