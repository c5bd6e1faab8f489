package envelope

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ztmesh/ztmesh/did"
)

var (
	errTooLarge  = errors.New("too large")
	errMalformed = errors.New("malformed")
)

func testFormat(section, canonical bool) *Format {
	return &Format{Context: "ztmesh/test/v1", Name: "test document", MaxSize: 1024,
		Section: section, Canonical: canonical, ErrTooLarge: errTooLarge, ErrMalformed: errMalformed}
}

func testIdentity(t *testing.T) *did.Identity {
	t.Helper()
	id, err := did.IdentityFromSeed(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSealOpenVerify(t *testing.T) {
	id := testIdentity(t)
	for _, f := range []*Format{testFormat(false, false), testFormat(false, true), testFormat(true, true)} {
		var section []byte
		if f.Section {
			section = []byte("quote")
		}
		data, err := f.Seal(id, []byte(`{"a":1}`), section)
		if err != nil {
			t.Fatal(err)
		}
		o, err := f.Open(append(append([]byte(" \n"), data...), '\n'))
		if err != nil {
			t.Fatal(err)
		}
		if string(o.Payload) != `{"a":1}` || !bytes.Equal(o.Section, section) || !bytes.Equal(o.Raw, data) {
			t.Errorf("Open: %q %q %q", o.Payload, o.Section, o.Raw)
		}
		if !f.Verify(id.PublicKey(), o) {
			t.Error("the signature does not verify")
		}
		other := *f
		other.Context = "ztmesh/other/v1"
		if other.Verify(id.PublicKey(), o) {
			t.Error("the signature verifies under another context")
		}
	}
}

func TestOpenRejects(t *testing.T) {
	id := testIdentity(t)
	plain, canon, sectioned := testFormat(false, false), testFormat(false, true), testFormat(true, true)
	good, err := canon.Seal(id, []byte(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    *Format
		data string
		want error
	}{
		{"over the size limit", plain, strings.Repeat(" ", 1025), errTooLarge},
		{"a tpm section where none is allowed", plain, strings.Replace(string(good), `,"signature"`, `,"tpm":"AA==","signature"`, 1), errMalformed},
		{"an unknown field", sectioned, strings.Replace(string(good), `{"payload"`, `{"x":1,"payload"`, 1), errMalformed},
		{"trailing data", plain, string(good) + "{}", errMalformed},
		{"unpadded base64", plain, `{"payload":"e30","signature":"AA=="}`, errMalformed},
		{"a short signature", plain, `{"payload":"e30=","signature":"AA=="}`, errMalformed},
		{"space inside a canonical envelope", canon, strings.Replace(string(good), `,"signature"`, `, "signature"`, 1), errMalformed},
		{"an empty tpm section in a canonical envelope", sectioned, strings.Replace(string(good), `,"signature"`, `,"tpm":"","signature"`, 1), errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.f.Open([]byte(tc.data)); !errors.Is(err, tc.want) {
				t.Errorf("Open: %v, want %v", err, tc.want)
			}
		})
	}
	// The same space is accepted where the format does not ask for
	// canonical form.
	if _, err := plain.Open([]byte(strings.Replace(string(good), `,"signature"`, `, "signature"`, 1))); err != nil {
		t.Errorf("space inside a non-canonical envelope: %v", err)
	}
}

func TestSealRefuses(t *testing.T) {
	id := testIdentity(t)
	if _, err := testFormat(false, false).Seal(id, bytes.Repeat([]byte{'x'}, 1024), nil); !errors.Is(err, errTooLarge) ||
		!strings.Contains(err.Error(), "the test document would be") {
		t.Errorf("oversize: %v", err)
	}
	if _, err := testFormat(false, false).Seal(id, []byte(`{}`), []byte("quote")); err == nil {
		t.Error("a section was sealed into a format without sections")
	}
}
