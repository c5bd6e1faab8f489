package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hyperledger/aries-framework-go/pkg/vdr/fingerprint"

	"github.com/ztmesh/ztmesh/did"
)

func idInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("id init", "--dir DIR [--passphrase-file F]",
		"Create a new node identity in DIR: an Ed25519 key written to DIR/identity.key\n"+
			"(mode 0600). Its did:key DID and libp2p peer ID are printed. An existing\n"+
			"identity is never overwritten. With --passphrase-file (or ZTMESH_PASSPHRASE)\n"+
			"the key file is encrypted with age (scrypt).", stdout)
	dir := fs.String("dir", "", "data directory `DIR` to create the identity in (created 0700 if missing)")
	passFile := fs.String("passphrase-file", "", "`FILE` holding a passphrase to encrypt the key with (mode 0600)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "dir", *dir); err != nil {
		return err
	}
	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	id, err := did.GenerateIdentity(rand.Reader)
	if err != nil {
		return err
	}
	if err := did.SaveIdentity(*dir, id, did.KeystoreOptions{Passphrase: pass}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "did:     %s\npeer_id: %s\n", id.DID(), id.PeerID())
	return nil
}

type idJSON struct {
	DID          string `json:"did"`
	PeerID       string `json:"peer_id"`
	KeyAgreement string `json:"key_agreement"`
}

func idShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("id show", "--dir DIR [--json] [--did]",
		"Print the identity in DIR: its DID, peer ID, and X25519 key-agreement key\n"+
			"(as the multibase fingerprint the did:key document lists).", stdout)
	dir := fs.String("dir", "", "data directory `DIR` holding identity.key")
	asJSON := fs.Bool("json", false, "print a JSON object")
	onlyDID := fs.Bool("did", false, "print only the DID (for scripts)")
	passFile := fs.String("passphrase-file", "", "passphrase `FILE` if the key is encrypted")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := requireFlag(fs, "dir", *dir); err != nil {
		return err
	}
	pass, err := passphrase(*passFile)
	if err != nil {
		return err
	}
	id, err := did.LoadIdentity(*dir, pass)
	if err != nil {
		return err
	}
	if *onlyDID {
		fmt.Fprintln(stdout, id.DID())
		return nil
	}
	out := idJSON{
		DID:          id.DID().String(),
		PeerID:       id.PeerID().String(),
		KeyAgreement: fingerprint.KeyFingerprint(fingerprint.X25519PubKeyMultiCodec, id.KeyAgreement().PublicKey().Bytes()),
	}
	if *asJSON {
		return writeJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "did:           %s\npeer_id:       %s\nkey_agreement: %s\n", out.DID, out.PeerID, out.KeyAgreement)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
