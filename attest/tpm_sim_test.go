//go:build tpmsim

// These tests run the hardware path against the TPM 2.0 reference
// implementation (go-tpm-tools/simulator). It is C code: it needs cgo and
// OpenSSL's headers, hence the build tag:
//
//	apt-get install -y libssl-dev && go test -tags tpmsim ./attest

package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/legacy/tpm2"
	"github.com/google/go-tpm/tpmutil"
)

// simTPM returns a TPM over a fresh simulator. The simulator is a process
// wide singleton: tests using it must not run in parallel.
func simTPM(t *testing.T, opts TPMOptions) (TPM, *simulator.Simulator) {
	t.Helper()
	sim, err := simulator.Get()
	if err != nil {
		t.Fatal(err)
	}
	tpm, err := NewTPM(sim, opts)
	if err != nil {
		sim.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tpm.Close(); err != nil {
			t.Error(err)
		}
	})
	return tpm, sim
}

func TestSimulatorQuote(t *testing.T) {
	tpm, sim := simTPM(t, TPMOptions{})
	// Measure something into PCR 7, as Secure Boot would.
	digest := sha256.Sum256([]byte("secure boot policy"))
	if err := tpm2.PCRExtend(sim, tpmutil.Handle(7), tpm2.AlgSHA256, digest[:], ""); err != nil {
		t.Fatal(err)
	}
	pcr7, err := tpm2.ReadPCR(sim, 7, tpm2.AlgSHA256)
	if err != nil {
		t.Fatal(err)
	}
	// A quote the same node made for an earlier challenge.
	ev, err := Sign(testIdentity(t, 1), testMeasurement(), testNonce(6), t0, tpm)
	if err != nil {
		t.Fatal(err)
	}
	earlier := parsed(t, ev).Hardware

	for _, tc := range []struct {
		name   string
		tpm    TPM
		nonce  []byte
		ref    func(r *Reference)
		want   []string
		wantHW bool
	}{
		{name: "quote created and verified", tpm: tpm, nonce: testNonce(7), wantHW: true,
			ref: func(r *Reference) {
				r.RequireHardware = true
				r.PCRs = map[int]string{7: hex.EncodeToString(pcr7)}
				r.AttestationKeys = []string{earlier.AKFingerprint()}
			}},
		{name: "wrong nonce", tpm: tpm, nonce: testNonce(8), wantHW: true,
			want: []string{"nonce does not match"}},
		{name: "altered PCR", tpm: lyingTPM{tpm, func(q *TPMQuote) { q.PCRs[7].Value[0] ^= 1 }},
			want: []string{"TPM quote invalid: given PCRs digest not matching"}},
		{name: "PCR changed since the reference values", tpm: tpm, wantHW: true,
			ref:  func(r *Reference) { r.PCRs = map[int]string{7: hash("another boot")} },
			want: []string{"PCR 7 is " + hex.EncodeToString(pcr7)}},
		{name: "quote replayed from earlier evidence", tpm: fixedTPM{earlier}, nonce: testNonce(7),
			want: []string{"TPM quote invalid: quote extraData"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := parsed(t, signed(t, testMeasurement(), tc.tpm))
			if e.Hardware == nil {
				t.Fatal("no TPM section")
			}
			ref := testReference()
			if tc.ref != nil {
				tc.ref(ref)
			}
			r := Verify(e, ref, tc.nonce)
			checkProblems(t, r, tc.want...)
			if r.Hardware != tc.wantHW {
				t.Errorf("Hardware = %v, want %v", r.Hardware, tc.wantHW)
			}
		})
	}
}

// TestSimulatorAKIsStable checks the PCR selection and that the attestation
// key is the same each time the TPM is opened, so operators can pin it.
func TestSimulatorAKIsStable(t *testing.T) {
	tpm, sim := simTPM(t, TPMOptions{PCRs: []int{0, 7, 7, 14}})
	q1, err := tpm.Quote(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if len(q1.PCRs) != 3 || q1.PCRs[0].Index != 0 || q1.PCRs[2].Index != 14 {
		t.Errorf("PCRs %v, want 0, 7 and 14", q1.PCRs)
	}
	// A second attestation key on the same TPM is the same key: it is
	// derived from the endorsement seed and the template.
	again, err := NewTPM(nopCloser{sim}, TPMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	q2, err := again.Quote(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	if q1.AKFingerprint() != q2.AKFingerprint() {
		t.Error("the attestation key changed")
	}
}

func TestSimulatorRejectsBadPCRSelection(t *testing.T) {
	sim, err := simulator.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	for _, pcrs := range [][]int{{}, {24}, {-1}} {
		if _, err := NewTPM(sim, TPMOptions{PCRs: pcrs}); !errors.Is(err, ErrMalformed) {
			t.Errorf("PCRs %v: got %v, want ErrMalformed", pcrs, err)
		}
	}
}

func TestSimulatorClosed(t *testing.T) {
	tpm, _ := simTPM(t, TPMOptions{})
	tpm.Close()
	if _, err := tpm.Quote(make([]byte, 32)); !errors.Is(err, ErrTPM) {
		t.Errorf("quote after Close: got %v, want ErrTPM", err)
	}
}

type nopCloser struct{ *simulator.Simulator }

func (nopCloser) Close() error { return nil }
