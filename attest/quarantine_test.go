package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// announced is an announcement by the identity of seed 3 that the node of
// seed 1 (the subject of signed evidence) is quarantined.
func announced(t testing.TB, reason string, evidence []byte) []byte {
	t.Helper()
	q, err := SignQuarantine(testIdentity(t, 3), &Quarantine{Subject: testIdentity(t, 1).DID(), Reason: reason, Evidence: evidence}, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestQuarantineRoundTrip(t *testing.T) {
	ev := signed(t, testMeasurement(), nil)
	for _, reason := range []string{QuarantineFailed, QuarantineStale} {
		data := announced(t, reason, ev)
		q, err := ParseQuarantine(append(append([]byte("\n"), data...), '\n'))
		if err != nil {
			t.Fatal(err)
		}
		if q.Announcer != testIdentity(t, 3).DID() || q.Subject != testIdentity(t, 1).DID() || q.Reason != reason ||
			!q.Time.Equal(t0.Add(time.Second)) || !bytes.Equal(q.Evidence, ev) || !bytes.Equal(q.Raw, data) {
			t.Fatalf("announcement changed: %+v", q)
		}
		e, err := q.SubjectEvidence(t0.Add(time.Second), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if e.Subject != q.Subject {
			t.Fatalf("evidence of %s", e.Subject)
		}
	}
}

// TestQuarantineVector checks the wire format against testdata (go test
// -run Vector -update rewrites it: a wire format change).
func TestQuarantineVector(t *testing.T) {
	path := filepath.Join("testdata", "quarantine-v1.json")
	data := announced(t, QuarantineFailed, signed(t, testMeasurement(), nil))
	if *update {
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, bytes.TrimSpace(want)) {
		t.Errorf("SignQuarantine no longer produces %s:\n got %s\nwant %s", path, data, want)
	}
	q, err := ParseQuarantine(want)
	if err != nil {
		t.Fatalf("the vector does not parse: %v", err)
	}
	if _, err := q.SubjectEvidence(t0, time.Minute); err != nil {
		t.Fatalf("the vector's evidence does not parse: %v", err)
	}
}

func TestParseQuarantineRejects(t *testing.T) {
	ev := signed(t, testMeasurement(), nil)
	good := announced(t, QuarantineFailed, ev)
	announcer := testIdentity(t, 3)

	// edit changes the payload and signs it again with signer's key.
	resign := func(signer byte, edit func(p map[string]any)) []byte {
		var env quarantineEnvelope
		json.Unmarshal(good, &env)
		payload, _ := b64.DecodeString(env.Payload)
		var p quarantinePayload
		json.Unmarshal(payload, &p)
		var m map[string]any
		raw, _ := json.Marshal(p)
		json.Unmarshal(raw, &m)
		edit(m)
		raw, _ = json.Marshal(m)
		p = quarantinePayload{}
		json.Unmarshal(raw, &p)
		payload, _ = json.Marshal(p)
		env.Payload = b64.EncodeToString(payload)
		env.Signature = b64.EncodeToString(testIdentity(t, signer).Sign(QuarantineContext, payload))
		out, _ := json.Marshal(env)
		return out
	}
	resignRaw := func(edit func(payload string) string) []byte {
		var env quarantineEnvelope
		json.Unmarshal(good, &env)
		payload, _ := b64.DecodeString(env.Payload)
		payload = []byte(edit(string(payload)))
		env.Payload = b64.EncodeToString(payload)
		env.Signature = b64.EncodeToString(announcer.Sign(QuarantineContext, payload))
		out, _ := json.Marshal(env)
		return out
	}
	setEnv := func(edit func(env *quarantineEnvelope)) []byte {
		var env quarantineEnvelope
		json.Unmarshal(good, &env)
		edit(&env)
		out, _ := json.Marshal(env)
		return out
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-10] ^= 1 // inside the signature's base64

	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"signature bit flipped", flipped, ErrBadSignature},
		{"subject changed after signing", setEnv(func(env *quarantineEnvelope) {
			payload, _ := b64.DecodeString(env.Payload)
			payload = bytes.Replace(payload, []byte(testIdentity(t, 1).DID().String()), []byte(testIdentity(t, 2).DID().String()), 1)
			env.Payload = b64.EncodeToString(payload)
		}), ErrBadSignature},
		{"signed by someone else than the announcer it names", resign(4, func(map[string]any) {}), ErrBadSignature},
		{"signature under another context", setEnv(func(env *quarantineEnvelope) {
			payload, _ := b64.DecodeString(env.Payload)
			env.Signature = b64.EncodeToString(announcer.Sign(EvidenceContext, payload))
		}), ErrBadSignature},
		{"unknown reason", resign(3, func(p map[string]any) { p["reason"] = "i said so" }), ErrMalformed},
		{"no evidence", resign(3, func(p map[string]any) { delete(p, "evidence") }), ErrMalformed},
		{"announces its own quarantine", resign(3, func(p map[string]any) { p["subject"] = announcer.DID().String() }), ErrMalformed},
		{"unknown payload field", resignRaw(func(p string) string { return strings.Replace(p, `{"announcer"`, `{"trust_me":true,"announcer"`, 1) }), ErrMalformed},
		{"space in the payload", resignRaw(func(p string) string { return strings.Replace(p, `,"reason"`, `, "reason"`, 1) }), ErrMalformed},
		{"time with an offset", resign(3, func(p map[string]any) { p["time"] = "2026-11-27T11:00:01+01:00" }), ErrMalformed},
		{"evidence base64 with a line break", resignRaw(func(p string) string { return strings.Replace(p, `"evidence":"`, `"evidence":"\n`, 1) }), ErrMalformed},
		{"short signature", setEnv(func(env *quarantineEnvelope) { env.Signature = "AAAA" }), ErrMalformed},
		{"unknown envelope field", []byte(strings.Replace(string(good), `{"payload"`, `{"x":1,"payload"`, 1)), ErrMalformed},
		{"trailing data", append(bytes.Clone(good), "{}"...), ErrMalformed},
		{"not JSON", []byte("quarantine them all"), ErrMalformed},
		{"oversized", append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxQuarantineSize)...), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseQuarantine(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestQuarantineSubjectEvidence(t *testing.T) {
	other, err := Sign(testIdentity(t, 2), testMeasurement(), testNonce(7), t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(signed(t, testMeasurement(), nil))
	tampered[len(tampered)-10] ^= 1 // inside the signature's base64
	for _, tc := range []struct {
		name     string
		evidence []byte
		now      time.Time
		want     error
	}{
		{"evidence signed by another node than the accused", other, t0, ErrBadSignature},
		{"evidence altered", tampered, t0, ErrBadSignature},
		{"evidence older than the receiver's maximum age", signed(t, testMeasurement(), nil), t0.Add(2 * time.Minute), ErrStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuarantine(announced(t, QuarantineFailed, tc.evidence))
			if err != nil {
				t.Fatal(err) // the announcement itself is genuine
			}
			if _, err := q.SubjectEvidence(tc.now, time.Minute); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignQuarantineRefuses(t *testing.T) {
	id := testIdentity(t, 3)
	for _, tc := range []struct {
		name string
		q    Quarantine
		want error
	}{
		{"unknown reason", Quarantine{Subject: testIdentity(t, 1).DID(), Reason: "bad vibes", Evidence: []byte("{}")}, ErrMalformed},
		{"no evidence", Quarantine{Subject: testIdentity(t, 1).DID(), Reason: QuarantineFailed}, ErrMalformed},
		{"itself", Quarantine{Subject: id.DID(), Reason: QuarantineFailed, Evidence: []byte("{}")}, ErrMalformed},
		{"evidence too large", Quarantine{Subject: testIdentity(t, 1).DID(), Reason: QuarantineFailed, Evidence: make([]byte, MaxEvidenceSize+1)}, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := SignQuarantine(id, &tc.q, t0); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The largest evidence there can be still fits.
	if _, err := SignQuarantine(id, &Quarantine{Subject: testIdentity(t, 1).DID(), Reason: QuarantineFailed, Evidence: make([]byte, MaxEvidenceSize)}, t0); err != nil {
		t.Fatalf("announcement of the largest evidence: %v", err)
	}
}
