package market

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/codec"
)

func TestManifestRoundTripAndHash(t *testing.T) {
	m := Manifest{Args: []string{"--n", "3"}, Env: []string{"MODE=fast"}}
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Args, " ") != "--n 3" || strings.Join(got.Env, " ") != "MODE=fast" {
		t.Fatalf("decoded %+v", got)
	}
	h1, _ := m.Hash()
	m.Args[1] = "4"
	if h2, _ := m.Hash(); h1 == h2 {
		t.Fatal("a changed argument keeps the manifest hash")
	}
	if !(&Manifest{}).Empty() || m.Empty() {
		t.Fatal("Empty is wrong")
	}
}

// The bounds a bid's args and env had hold for the manifest, at the
// bound and one past it; a manifest larger than MaxManifestSize is
// refused before it is decoded.
func TestManifestBounds(t *testing.T) {
	per := MaxArgBytes / MaxArgs
	full := Manifest{}
	for range MaxArgs {
		full.Args = append(full.Args, strings.Repeat("a", per))
		full.Env = append(full.Env, "K="+strings.Repeat("v", per-2))
	}
	raw, err := full.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > MaxManifestSize {
		t.Fatalf("the largest valid manifest takes %d bytes, over MaxManifestSize %d", len(raw), MaxManifestSize)
	}
	if _, err := DecodeManifest(raw); err != nil {
		t.Fatalf("manifest at the bounds: %v", err)
	}
	cases := []struct {
		name string
		mut  func(m *Manifest)
	}{
		{"too many args", func(m *Manifest) { m.Args = make([]string, MaxArgs+1) }},
		{"args one byte too long", func(m *Manifest) { m.Args[0] += "x" }},
		{"env one byte too long", func(m *Manifest) { m.Env[0] += "x" }},
		{"NUL in arg", func(m *Manifest) { m.Args = []string{"a\x00b"} }},
		{"env without =", func(m *Manifest) { m.Env = []string{"PATH"} }},
		{"env with empty key", func(m *Manifest) { m.Env = []string{"=x"} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Manifest{Args: append([]string(nil), full.Args...), Env: append([]string(nil), full.Env...)}
			c.mut(&m)
			if err := m.Validate(); CodeOf(err) != CodeField {
				t.Fatalf("Validate = %v, want a field error", err)
			}
			raw, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeManifest(raw); err == nil {
				t.Fatal("DecodeManifest accepted it")
			}
		})
	}
	huge := append(bytes.Clone(raw[:len(raw)-1]), bytes.Repeat([]byte{'a'}, MaxManifestSize)...)
	if _, err := DecodeManifest(huge); !errors.Is(err, codec.ErrTooLarge) {
		t.Fatalf("oversized manifest: %v, want ErrTooLarge", err)
	}
}

// The largest bid Validate accepts fits MaxBidSize, which DecodeBid
// enforces: a bid no longer carries args and env.
func TestLargestBidFitsMaxBidSize(t *testing.T) {
	b := signedBid(t, testKey(t, 2), maximalBid(1))
	if err := b.Validate(t0); err != nil {
		t.Fatalf("the maximal bid is invalid: %v", err)
	}
	raw, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > MaxBidSize {
		t.Fatalf("the largest valid bid takes %d bytes, over MaxBidSize %d", len(raw), MaxBidSize)
	}
	t.Logf("largest valid bid: %d bytes", len(raw))
	if _, err := DecodeBid(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeBid(append(raw, make([]byte, MaxBidSize)...)); CodeOf(err) != CodeDecode {
		t.Fatalf("an oversized bid decodes: %v", err)
	}
}

func FuzzDecodeManifest(f *testing.F) {
	good, _ := (&Manifest{Args: []string{"a"}, Env: []string{"K=v"}}).Encode()
	f.Add(good)
	f.Add([]byte{0xa0})
	f.Add(good[:3])
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeManifest(data)
		if err != nil {
			return
		}
		again, err := m.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded manifest does not re-encode to its bytes: %v", err)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded manifest is invalid: %v", err)
		}
	})
}

// Attack (issue 15): a client fills every node's book with maximal bids.
// A bid carried args and env (up to 2 × 16 KiB), so a maximal bid took
// ~40 KB encoded and ~43 KB of heap in the book: ~4 GiB at the book's
// 100,000 bids. Such a bid, with its args and env where they were (keys 5
// and 6), is now refused at decode; what a bid may still carry fits
// MaxBidSize.
func TestAttackBidWithArgsOfTheOldMaximalSizeIsRefused(t *testing.T) {
	type oldBid struct {
		Bid
		Args []string `cbor:"5,keyasint,omitempty"`
		Env  []string `cbor:"6,keyasint,omitempty"`
	}
	b := baseBid(1)
	b.Payload.Manifest = nil
	old := oldBid{Bid: *signedBid(t, testKey(t, 2), b)}
	per := MaxArgBytes / MaxArgs
	for range MaxArgs {
		old.Args = append(old.Args, strings.Repeat("a", per))
		old.Env = append(old.Env, "K="+strings.Repeat("v", per-2))
	}
	raw, err := codec.Marshal(&old)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 32<<10 {
		t.Fatalf("the old maximal bid takes %d bytes, want over 32 KiB", len(raw))
	}
	if _, err := DecodeBid(raw); CodeOf(err) != CodeDecode {
		t.Fatalf("a %d-byte bid with args and env: %v, want a decode error", len(raw), err)
	}
	// The same bid with args and env moved out (a manifest hash instead)
	// is small, decodes and validates.
	small := baseBid(1)
	if raw, err = signedBid(t, testKey(t, 2), small).Encode(); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBid(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(t0); err != nil || len(raw) > 1024 {
		t.Fatalf("the small bid: %d bytes, %v", len(raw), err)
	}
}
