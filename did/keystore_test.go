package did

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKeystoreRoundTrip(t *testing.T) {
	for _, pass := range []string{"", "correct horse battery staple"} {
		t.Run("passphrase="+pass, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "node")
			id, err := GenerateIdentity(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			opts := KeystoreOptions{Passphrase: []byte(pass), ScryptWorkFactor: 10}
			if err := SaveIdentity(dir, id, opts); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dir, KeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
			}
			back, err := LoadIdentity(dir, []byte(pass))
			if err != nil {
				t.Fatal(err)
			}
			if back.DID() != id.DID() {
				t.Fatal("loaded a different identity")
			}
			if err := SaveIdentity(dir, id, opts); !errors.Is(err, ErrIdentityExists) {
				t.Fatalf("overwrite: %v", err)
			}
		})
	}
}

func TestKeystoreRefuses(t *testing.T) {
	id, err := GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	plain := t.TempDir()
	if err := SaveIdentity(plain, id, KeystoreOptions{}); err != nil {
		t.Fatal(err)
	}
	enc := t.TempDir()
	if err := SaveIdentity(enc, id, KeystoreOptions{Passphrase: []byte("secret"), ScryptWorkFactor: 10}); err != nil {
		t.Fatal(err)
	}

	t.Run("group readable", func(t *testing.T) {
		dir := t.TempDir()
		if err := SaveIdentity(dir, id, KeystoreOptions{}); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, KeyFile), 0o640)
		if _, err := LoadIdentity(dir, nil); !errors.Is(err, ErrKeyPermissions) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("world readable", func(t *testing.T) {
		dir := t.TempDir()
		if err := SaveIdentity(dir, id, KeystoreOptions{}); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, KeyFile), 0o604)
		if _, err := LoadIdentity(dir, nil); !errors.Is(err, ErrKeyPermissions) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := LoadIdentity(t.TempDir(), nil); !errors.Is(err, ErrNoIdentity) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("encrypted without passphrase", func(t *testing.T) {
		if _, err := LoadIdentity(enc, nil); !errors.Is(err, ErrPassphraseRequired) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("wrong passphrase", func(t *testing.T) {
		if _, err := LoadIdentity(enc, []byte("wrong")); err == nil {
			t.Fatal("wrong passphrase accepted")
		}
	})
	t.Run("garbage key file", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, KeyFile), []byte("-----BEGIN NOPE-----\n"), 0o600)
		if _, err := LoadIdentity(dir, nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("huge key file", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, KeyFile), make([]byte, maxKeyFileSize+1), 0o600)
		if _, err := LoadIdentity(dir, nil); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("passphrase ignored for plain file", func(t *testing.T) {
		if _, err := LoadIdentity(plain, []byte("unused")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReadPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pass")
	os.WriteFile(p, []byte("s3cret\n"), 0o600)
	got, err := ReadPassphraseFile(p)
	if err != nil || string(got) != "s3cret" {
		t.Fatalf("got %q, %v", got, err)
	}
	os.Chmod(p, 0o644)
	if _, err := ReadPassphraseFile(p); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("world-readable passphrase file: %v", err)
	}
}

func FuzzParseKeyPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN ZTMESH ED25519 PRIVATE KEY-----\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n-----END ZTMESH ED25519 PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN AGE ENCRYPTED FILE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := parseKeyPEM(data)
		if err == nil && len(id.Seed()) != 32 {
			t.Fatal("identity with a bad seed")
		}
	})
}
