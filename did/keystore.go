package did

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Keystore file layout in a data directory.
const (
	// KeyFile is the identity's private key file in a data directory.
	KeyFile = "identity.key"
	// CredentialFile is where a node keeps its own credential.
	CredentialFile = "credential.jwt"

	keyPEMType     = "ZTMESH ED25519 PRIVATE KEY"
	maxKeyFileSize = 64 << 10
	// PassphraseEnv names the environment variable a passphrase may come from.
	PassphraseEnv = "ZTMESH_PASSPHRASE"
)

// KeystoreOptions tune how a key file is written.
type KeystoreOptions struct {
	// Passphrase, if not empty, encrypts the key file with age (scrypt).
	Passphrase []byte
	// ScryptWorkFactor is log2 of scrypt's N; 0 means age's default (18,
	// about a second). Tests use a small value.
	ScryptWorkFactor int
}

// SaveIdentity writes id's key to dir/identity.key with mode 0600, creating
// dir (0700) if needed. It never overwrites an existing key file.
func SaveIdentity(dir string, id *Identity, opts KeystoreOptions) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, KeyFile)
	data := pem.EncodeToMemory(&pem.Block{Type: keyPEMType, Bytes: id.Seed()})
	if len(opts.Passphrase) > 0 {
		var err error
		if data, err = encryptKey(data, opts); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w: %s exists; use another --dir or remove it deliberately", ErrIdentityExists, path)
	}
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file: %w", err)
	}
	return f.Close()
}

func encryptKey(plain []byte, opts KeystoreOptions) ([]byte, error) {
	r, err := age.NewScryptRecipient(string(opts.Passphrase))
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	if opts.ScryptWorkFactor > 0 {
		r.SetWorkFactor(opts.ScryptWorkFactor)
	}
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("encrypt key: %w", err)
	}
	return buf.Bytes(), nil
}

// LoadIdentity reads dir/identity.key. It refuses a key file that group or
// others may read, and an encrypted one when passphrase is empty.
func LoadIdentity(dir string, passphrase []byte) (*Identity, error) {
	path := filepath.Join(dir, KeyFile)
	data, err := readPrivateFile(path, maxKeyFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: create one with `ztmesh id init --dir %s`", ErrNoIdentity, dir, dir)
	}
	if err != nil {
		return nil, err
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte(armor.Header)) {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("%w: %s is encrypted; give --passphrase-file or set %s", ErrPassphraseRequired, path, PassphraseEnv)
		}
		if data, err = decryptKey(data, passphrase); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	id, err := parseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// parseKeyPEM decodes the plain (decrypted) key file.
func parseKeyPEM(data []byte) (*Identity, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != keyPEMType || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: not a ztmesh key file", ErrMalformed)
	}
	id, err := IdentityFromSeed(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return id, nil
}

func decryptKey(data, passphrase []byte) ([]byte, error) {
	si, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	r, err := age.Decrypt(armor.NewReader(bytes.NewReader(data)), si)
	if err != nil {
		return nil, fmt.Errorf("decrypt key (wrong passphrase?): %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize))
	if err != nil {
		return nil, fmt.Errorf("decrypt key: %w", err)
	}
	return plain, nil
}

// readPrivateFile reads a secret file, refusing one that group or others can
// read or that is larger than limit.
func readPrivateFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run `chmod 600 %s`", ErrKeyPermissions, path, perm, path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, path, fi.Size(), limit)
	}
	return io.ReadAll(io.LimitReader(f, limit))
}

// ReadPassphraseFile reads a passphrase from a file: its content without the
// trailing newline. The file must not be readable by group or others.
func ReadPassphraseFile(path string) ([]byte, error) {
	data, err := readPrivateFile(path, 4<<10)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	p := strings.TrimRight(string(data), "\r\n")
	if p == "" {
		return nil, fmt.Errorf("passphrase file %s is empty", path)
	}
	return []byte(p), nil
}
