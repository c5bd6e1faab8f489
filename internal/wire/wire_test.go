package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	type msg struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	if err := WriteJSON(&buf, msg{1, "x"}, 100); err != nil {
		t.Fatal(err)
	}
	var out msg
	if err := ReadJSON(&buf, &out, 100); err != nil || out != (msg{1, "x"}) {
		t.Fatalf("%+v %v", out, err)
	}
	if err := WriteJSON(&buf, msg{1, "a long string"}, 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized write: %v", err)
	}
}

func TestReadRejects(t *testing.T) {
	frame := func(body string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	var v struct {
		A int `json:"a"`
	}
	for name, data := range map[string][]byte{
		"empty":         nil,
		"short header":  {0, 0},
		"truncated":     append(binary.BigEndian.AppendUint32(nil, 10), "abc"...),
		"unknown field": frame(`{"a":1,"b":2}`),
		"trailing":      frame(`{"a":1} {}`),
		"stray brace":   frame(`{"a":1}}`),
		"stray bracket": frame(`{"a":1}]`),
		"not json":      frame(`nope`),
		"over limit":    binary.BigEndian.AppendUint32(nil, 1<<31),
	} {
		if err := ReadJSON(bytes.NewReader(data), &v, 64); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzReadJSON(f *testing.F) {
	f.Add(append(binary.BigEndian.AppendUint32(nil, 7), `{"a":1}`...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(append(binary.BigEndian.AppendUint32(nil, 1000), "abc"...)) // declares more than it sends
	f.Fuzz(func(t *testing.T, data []byte) {
		var v map[string]any
		body, err := ReadFrame(bytes.NewReader(data), 1024)
		if err == nil && len(body) > 1024 {
			t.Fatalf("frame of %d bytes over the limit", len(body))
		}
		if err == nil && uint32(len(body)) != binary.BigEndian.Uint32(data) {
			t.Fatalf("frame of %d bytes, its header said %d", len(body), binary.BigEndian.Uint32(data))
		}
		_ = ReadJSON(bytes.NewReader(data), &v, 1024)
	})
}

func TestDecodeStrict(t *testing.T) {
	type msg struct {
		A int `json:"a"`
	}
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"one value", `{"a":1}`, true},
		{"white space around the value", " \n{\"a\":1}\t\r\n ", true},
		{"an unknown field", `{"a":1,"b":2}`, false},
		{"a second value", `{"a":1}{"a":2}`, false},
		{"a trailing number", `{"a":1} 2`, false},
		{"a stray closing brace", `{"a":1}}`, false},
		{"a stray closing bracket", `{"a":1}]`, false},
		{"a stray comma", `{"a":1},`, false},
		{"a stray colon", `{"a":1}:`, false},
		{"trailing garbage", `{"a":1}x`, false},
		{"nothing", ``, false},
		{"a truncated value", `{"a":`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m msg
			if err := DecodeStrict([]byte(tc.in), &m); (err == nil) != tc.ok {
				t.Errorf("DecodeStrict(%q): %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

// TestReadFrameAllocatesWhatArrives: a peer that declares a long frame and
// sends a few bytes makes the reader allocate about what it sent, not the
// declared length (on main, ReadFrame allocated the declared 8 MiB).
func TestReadFrameAllocatesWhatArrives(t *testing.T) {
	const declared = 8 << 20
	data := append(binary.BigEndian.AppendUint32(nil, declared), "0123456789"...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const runs = 16
	for range runs {
		if _, err := ReadFrame(bytes.NewReader(data), declared); err == nil {
			t.Fatal("truncated frame accepted")
		}
	}
	runtime.ReadMemStats(&after)
	perRead := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("allocated %d bytes per truncated read of a frame declaring %d", perRead, declared)
	if perRead > 64<<10 {
		t.Fatalf("a frame declaring %d bytes and carrying 10 cost %d bytes, want at most %d", declared, perRead, 64<<10)
	}
}

func TestReadFrameLongBody(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100<<10+7)
	var buf bytes.Buffer
	if err := WriteFrame(&buf, body, len(body)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(&buf, len(body))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
}
