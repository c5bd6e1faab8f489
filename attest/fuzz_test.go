package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzParseEvidence feeds arbitrary bytes to the evidence decoder. It must
// never panic, must fail with one of the package's sentinels, and whatever
// it accepts must be in canonical form: encoding the decoded values again
// gives the input back, byte for byte. Decoded evidence goes through Verify
// too, TPM section included.
func FuzzParseEvidence(f *testing.F) {
	f.Add(signed(f, testMeasurement(), nil))
	f.Add(signed(f, testMeasurement(), newSoftTPM(f)))
	f.Add(signed(f, bigMeasurement(20), nil))
	f.Add([]byte(`{"payload":"e30=","signature":""}`))
	f.Add([]byte(`{}`))
	ref := testReference()
	ref.PCRs = map[int]string{7: hash("x")}

	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEvidence(data, t0, time.Hour)
		if err != nil && !isSentinel(err) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if err == nil && !bytes.Equal(e.Raw, bytes.TrimSpace(data)) {
			t.Fatal("Raw is not the input")
		}

		// The decoder alone, without the signature check that stops
		// nearly every mutation.
		opened, err := evidenceFormat.Open(data)
		if err != nil {
			return
		}
		payload, section := opened.Payload, opened.Section
		e, err = decodeEvidence(opened)
		if err != nil {
			return
		}
		again, err := e.payload()
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("payload not canonical:\n in %q\nout %q", payload, again)
		}
		if e.Hardware != nil {
			s, err := e.Hardware.encode()
			if err != nil || !bytes.Equal(s, section) {
				t.Fatalf("tpm section not canonical:\n in %q\nout %q", section, s)
			}
		}
		env := evidenceEnvelope{Payload: b64.EncodeToString(payload), Signature: b64.EncodeToString(e.Signature)}
		if section != nil {
			env.TPM = b64.EncodeToString(section)
		}
		if out, _ := json.Marshal(env); !bytes.Equal(out, opened.Raw) {
			t.Fatalf("envelope not canonical:\n in %q\nout %q", opened.Raw, out)
		}
		Verify(e, ref, testNonce(7))
	})
}

// FuzzVerifyQuote feeds arbitrary TPM structures, certified by the subject
// as a malicious node would, to the quote verifier: it must never panic
// nor accept them.
func FuzzVerifyQuote(f *testing.F) {
	q, err := newSoftTPM(f).Quote(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(q.AKPublic, q.Quote, q.Signature, q.PCRs[0].Value)
	id := testIdentity(f, 1)
	f.Fuzz(func(t *testing.T, akPub, quote, sig, pcr0 []byte) {
		q := &TPMQuote{
			AKPublic:        akPub,
			AKCertification: id.Sign(AKContext, akPub),
			Quote:           quote,
			Signature:       sig,
			PCRs:            []PCR{{Index: 0, Value: pcr0}},
		}
		if err := verifyQuote(id.DID(), q, []byte("not the extraData of any seed")); err == nil {
			t.Fatal("accepted a quote with the wrong extraData")
		}
	})
}

// FuzzVerifyReference: never panic, always a sentinel.
func FuzzVerifyReference(f *testing.F) {
	issuer := testIdentity(f, 9)
	f.Add(signRef(f, issuer, testReference()))
	scoped := testReference()
	scoped.Mesh, scoped.Expires = "fleet", time.Date(2026, 12, 27, 10, 0, 0, 0, time.UTC)
	f.Add(signRef(f, issuer, scoped))
	f.Add([]byte(`{"payload":"","signature":""}`))
	trusted := trustOnly(issuer.DID())
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := VerifyReference(data, trusted); err != nil && !isSentinel(err) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if ref, err := decodeReference(data); err == nil {
			if err := ref.validate(); err != nil {
				t.Fatalf("decoded values do not validate: %v", err)
			}
		}
	})
}

// FuzzParseQuarantine feeds arbitrary bytes to the quarantine announcement
// decoder: it must never panic, must fail with one of the package's
// sentinels, and whatever it decodes must be in canonical form (encoding
// the decoded values again gives the input back). The enclosed evidence
// goes through SubjectEvidence too.
func FuzzParseQuarantine(f *testing.F) {
	ev := signed(f, testMeasurement(), nil)
	f.Add(announced(f, QuarantineFailed, ev))
	f.Add(announced(f, QuarantineStale, signed(f, testMeasurement(), newSoftTPM(f))))
	f.Add([]byte(`{"payload":"e30=","signature":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ParseQuarantine(data)
		if err != nil && !isSentinel(err) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if err == nil {
			if !bytes.Equal(q.Raw, bytes.TrimSpace(data)) {
				t.Fatal("Raw is not the input")
			}
			if _, err := q.SubjectEvidence(t0, time.Hour); err != nil && !isSentinel(err) {
				t.Fatalf("evidence error wraps no sentinel: %v", err)
			}
		}

		// The decoder alone, without the signature check.
		opened, err := quarantineFormat.Open(data)
		if err != nil {
			return
		}
		payload := opened.Payload
		q, err = decodeQuarantine(opened)
		if err != nil {
			return
		}
		again, err := q.payload()
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("payload not canonical:\n in %q\nout %q", payload, again)
		}
		env := quarantineEnvelope{Payload: b64.EncodeToString(payload), Signature: b64.EncodeToString(q.Signature)}
		if out, _ := json.Marshal(env); !bytes.Equal(out, opened.Raw) {
			t.Fatalf("envelope not canonical:\n in %q\nout %q", opened.Raw, out)
		}
		if err := q.validate(); err != nil {
			t.Fatalf("decoded announcement does not validate: %v", err)
		}
	})
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrMalformed, ErrTooLarge, ErrBadSignature, ErrStale, ErrFuture, ErrUntrustedIssuer} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
