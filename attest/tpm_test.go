package attest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenTPM(t *testing.T) {
	notTPM := filepath.Join(t.TempDir(), "tpm")
	os.WriteFile(notTPM, []byte("not a TPM"), 0o600)
	for _, tc := range []struct {
		name string
		path string
		want error
	}{
		{"no TPM on this machine", filepath.Join(t.TempDir(), "tpmrm0"), ErrNoTPM},
		{"a file that is not a TPM", notTPM, ErrTPM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tpm, err := OpenTPM(TPMOptions{Path: tc.path})
			if !errors.Is(err, tc.want) || tpm != nil {
				t.Fatalf("got %v, %v; want nil, %v", tpm, err, tc.want)
			}
		})
	}
}
