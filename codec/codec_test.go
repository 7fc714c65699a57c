package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

type sample struct {
	Z    uint64            `cbor:"z"`
	A    string            `cbor:"a"`
	Blob []byte            `cbor:"b"`
	M    map[string]uint64 `cbor:"m"`
	L    []uint32          `cbor:"l"`
}

func TestRoundTripAndDeterminism(t *testing.T) {
	v := sample{Z: 7, A: "x", Blob: []byte{1, 2}, M: map[string]uint64{"bb": 2, "a": 1, "c": 3}, L: []uint32{3, 1}}
	first := MustMarshal(v)
	for i := 0; i < 50; i++ { // map iteration order is random; bytes must not be
		if again := MustMarshal(v); !bytes.Equal(first, again) {
			t.Fatalf("encoding not deterministic:\n%x\n%x", first, again)
		}
	}
	var got sample
	if err := UnmarshalCanonical(first, &got); err != nil {
		t.Fatal(err)
	}
	if got.Z != 7 || got.A != "x" || !bytes.Equal(got.Blob, v.Blob) || got.M["bb"] != 2 || len(got.L) != 2 {
		t.Fatalf("round trip: got %+v", got)
	}
	// Core deterministic: shorter keys sort first, then bytewise, so the map
	// {"a":1,"bb":2,"c":3} encodes as a, c, bb.
	if want := mustHex(t, "a3 6161 01 6163 03 626262 02"); !bytes.Contains(first, want) {
		t.Fatalf("map not in core deterministic order: %x", first)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecoderRejects(t *testing.T) {
	small, err := NewDecoder(Limits{MaxSize: 64, MaxNesting: 4, MaxArrayElements: 16, MaxMapPairs: 16})
	if err != nil {
		t.Fatal(err)
	}
	nested := func(depth int) []byte { // [[[[...0]]]]
		b := bytes.Repeat([]byte{0x81}, depth)
		return append(b, 0x00)
	}
	cases := []struct {
		name string
		in   []byte
		into func() any
		want error // nil: any error
	}{
		{"too large", make([]byte, 65), func() any { return new([]byte) }, ErrTooLarge},
		{"too deep", nested(6), func() any { return new(any) }, nil},
		{"array too long", append([]byte{0x98, 17}, make([]byte, 17)...), func() any { return new([]uint8) }, nil},
		{"map too long", mapOf(17), func() any { return new(map[string]uint8) }, nil},
		{"indefinite length", []byte{0x9f, 0x01, 0xff}, func() any { return new([]uint8) }, nil},
		{"tag", []byte{0xc1, 0x01}, func() any { return new(any) }, nil},
		{"duplicate key", []byte{0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02}, func() any { return new(map[string]uint8) }, nil},
		{"unknown field", []byte{0xa1, 0x61, 0x71, 0x01}, func() any { return new(sample) }, nil},
		{"trailing bytes", []byte{0x01, 0x02}, func() any { return new(uint8) }, nil},
		{"truncated", []byte{0x62, 0x61}, func() any { return new(string) }, nil},
		{"invalid utf8", []byte{0x61, 0xff}, func() any { return new(string) }, nil},
		{"negative into unsigned", []byte{0x20}, func() any { return new(uint64) }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := small.Unmarshal(c.in, c.into())
			if err == nil {
				t.Fatalf("decoded %x without error", c.in)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func mapOf(n int) []byte {
	b := []byte{0xb8, byte(n)}
	for i := 0; i < n; i++ {
		b = append(b, 0x61, byte('A'+i), 0x00)
	}
	return b
}

func TestUnmarshalCanonicalRefusesNonCanonical(t *testing.T) {
	// 1 encoded in two bytes (0x18 0x01) instead of one.
	var v uint64
	if err := Unmarshal([]byte{0x18, 0x01}, &v); err == nil && v != 1 {
		t.Fatalf("lenient decode gave %d", v)
	}
	if err := UnmarshalCanonical([]byte{0x18, 0x01}, &v); !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("got %v, want ErrNotCanonical", err)
	}
	// Map keys out of canonical order.
	var m map[string]uint8
	if err := UnmarshalCanonical([]byte{0xa2, 0x62, 0x62, 0x62, 0x01, 0x61, 0x61, 0x02}, &m); !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("got %v, want ErrNotCanonical", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(MustMarshal(sample{Z: 1, A: "a", M: map[string]uint64{"k": 1}, L: []uint32{1}}))
	f.Add([]byte{0x9f, 0x01, 0xff})
	f.Add([]byte{0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		if err := UnmarshalCanonical(data, &s); err != nil {
			return
		}
		// Whatever decodes canonically must re-encode to the same bytes.
		if again := MustMarshal(s); !bytes.Equal(again, data) {
			t.Fatalf("canonical input %x re-encoded as %x", data, again)
		}
		var a any
		_ = Unmarshal(data, &a)
	})
}

func BenchmarkMarshal(b *testing.B) {
	v := sample{Z: 1 << 40, A: "provider-offer", Blob: make([]byte, 64), M: map[string]uint64{"cpu": 4000, "mem": 8192}, L: []uint32{1, 2, 3}}
	b.ReportAllocs()
	for b.Loop() {
		MustMarshal(v)
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	data := MustMarshal(sample{Z: 1 << 40, A: "provider-offer", Blob: make([]byte, 64), M: map[string]uint64{"cpu": 4000, "mem": 8192}, L: []uint32{1, 2, 3}})
	b.ReportAllocs()
	for b.Loop() {
		var s sample
		if err := Unmarshal(data, &s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMustDecoderPanicsOnLimitsNewDecoderRefuses(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("MustDecoder accepted MaxSize 0")
		}
	}()
	MustDecoder(Limits{})
}
