package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := present{V: 1, Mesh: "fleet", Credential: "a.b.c", KeyPackage: []byte("kp")}
	if err := writeFrame(&buf, in); err != nil {
		t.Fatal(err)
	}
	body, err := readFrame(&buf)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodePresent(body)
	if err != nil || out.Mesh != in.Mesh || out.Credential != in.Credential || string(out.KeyPackage) != "kp" {
		t.Fatalf("got %+v, %v", out, err)
	}
}

func TestReadFrameRefusesBeforeAllocating(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxHandshakeMessage+1)
	if _, err := readFrame(bytes.NewReader(hdr[:])); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("got %v", err)
	}
	// A frame that announces more than it carries is an error, not a hang.
	binary.BigEndian.PutUint32(hdr[:], 100)
	if _, err := readFrame(bytes.NewReader(append(hdr[:], "short"...))); err == nil {
		t.Fatal("truncated frame accepted")
	}
}

func TestDecodePresentRejects(t *testing.T) {
	for name, body := range map[string]string{
		"empty":          ``,
		"not json":       `hello`,
		"wrong version":  `{"v":2,"mesh":"m","credential":"x","key_package":"a3A="}`,
		"no credential":  `{"v":1,"mesh":"m","key_package":"a3A="}`,
		"no key package": `{"v":1,"mesh":"m","credential":"x"}`,
		"unknown field":  `{"v":1,"mesh":"m","credential":"x","extra":1}`,
		"trailing data":  `{"v":1,"mesh":"m","credential":"x"} {}`,
		"wrong types":    `{"v":"1","mesh":"m","credential":"x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if p, err := decodePresent([]byte(body)); err == nil {
				t.Fatalf("accepted %+v", p)
			}
		})
	}
}

// FuzzHandshakeDecoder feeds arbitrary bytes to the frame reader and the
// present decoder, as a hostile peer would.
func FuzzHandshakeDecoder(f *testing.F) {
	var buf bytes.Buffer
	writeFrame(&buf, present{V: 1, Mesh: "m", Credential: "eyJ.eyJ.sig", KeyPackage: []byte("kp")})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := readFrame(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(body) > MaxHandshakeMessage {
			t.Fatalf("frame of %d bytes accepted", len(body))
		}
		p, err := decodePresent(body)
		if err != nil {
			return
		}
		if p.V != handshakeVersion || p.Credential == "" {
			t.Fatalf("accepted invalid present %+v", p)
		}
		decodeResult(body)
	})
}
