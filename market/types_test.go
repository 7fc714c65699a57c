package market

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/bourse-net/bourse/codec"
	"github.com/bourse-net/bourse/wallet"
)

func TestOfferSignEncodeDecodeVerify(t *testing.T) {
	key := testKey(t, 1)
	o := signedOffer(t, key, baseOffer(3))
	data, err := o.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeOffer(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, o) {
		t.Fatalf("round trip changed the offer:\n got %+v\nwant %+v", got, o)
	}
	if err := got.Verify(testChain); err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(t0); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify("other-chain"); CodeOf(err) != CodeSignature {
		t.Fatalf("verify for another chain: %v", err)
	}
	if id := got.ID(); id.Provider != key.Address() || id.Seq != 3 {
		t.Fatalf("ID = %v", id)
	}
	var back OfferID
	if err := back.UnmarshalText([]byte(got.ID().String())); err != nil || back != got.ID() {
		t.Fatalf("offer id text round trip: %v, %v", back, err)
	}
	// Signing with another key than the provider's fails.
	if err := o.Sign(testChain, testKey(t, 2)); err == nil {
		t.Fatal("re-signing with a different key succeeded")
	}
}

func TestBidIDIsContentHashWithoutSignature(t *testing.T) {
	key := testKey(t, 2)
	b := baseBid(1)
	b.Client = key.Public()
	before := b.ID()
	sb := signedBid(t, key, b)
	if sb.ID() != before {
		t.Fatal("signing changed the job id")
	}
	b2 := baseBid(2) // another nonce: another job
	b2.Client = key.Public()
	if b2.ID() == before {
		t.Fatal("different nonces gave the same job id")
	}
	data, err := sb.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBid(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != before || got.Verify(testChain) != nil || got.Validate(t0) != nil {
		t.Fatalf("decoded bid: id %s verify %v validate %v", got.ID(), got.Verify(testChain), got.Validate(t0))
	}
	id, err := ParseBidID(before.String())
	if err != nil || id != before {
		t.Fatalf("ParseBidID: %v %v", id, err)
	}
	for _, bad := range []string{"", "zz", strings.Repeat("a", 63), strings.Repeat("a", 66)} {
		if _, err := ParseBidID(bad); err == nil {
			t.Errorf("ParseBidID(%q) accepted", bad)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	key := testKey(t, 1)
	o := signedOffer(t, key, baseOffer(1))
	good, _ := o.Encode()
	// Non-canonical: the same value with a map re-encoded indefinite or
	// with a zero field written out.
	type loose struct {
		Offer
		Extra uint64 `cbor:"99,keyasint"`
	}
	withUnknown, _ := codec.Marshal(loose{Offer: *o, Extra: 1})
	type negRes struct {
		CPU int64 `cbor:"1,keyasint"`
	}
	type negOffer struct {
		Total negRes `cbor:"5,keyasint"`
	}
	negative, _ := codec.Marshal(negOffer{Total: negRes{CPU: -1}})
	cases := map[string][]byte{
		"negative cpu":  negative,
		"empty":         nil,
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"unknown field": withUnknown,
		"too large":     bytes.Repeat([]byte{0x40}, 9<<10),
		"not a map":     {0x01},
	}
	for name, data := range cases {
		if _, err := DecodeOffer(data); CodeOf(err) != CodeDecode {
			t.Errorf("%s: DecodeOffer = %v, want a decode error", name, err)
		}
		if _, err := DecodeBid(data); CodeOf(err) != CodeDecode {
			t.Errorf("%s: DecodeBid = %v, want a decode error", name, err)
		}
	}
	// The same offer with Seq (key 3) = 1 written in two bytes instead of
	// one decodes to the same value but is not canonical.
	at := bytes.Index(good, []byte("Provider\x03\x01"))
	if at < 0 {
		t.Fatal("test setup: seq not found in the encoding")
	}
	at += len("Provider\x03")
	nonCanon := append(append(append([]byte{}, good[:at]...), 0x18, 0x01), good[at+1:]...)
	if _, err := DecodeOffer(nonCanon); !errors.Is(err, codec.ErrNotCanonical) {
		t.Errorf("non-canonical offer: %v, want ErrNotCanonical", err)
	}
}

func TestOfferValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Offer)
		want Code
	}{
		{"valid", func(*Offer) {}, ""},
		{"no provider", func(o *Offer) { o.Provider = wallet.PublicKey{} }, CodeField},
		{"no peer id", func(o *Offer) { o.PeerID = "" }, CodeField},
		{"peer id with space", func(o *Offer) { o.PeerID = "a b" }, CodeField},
		{"seq zero", func(o *Offer) { o.Seq = 0 }, CodeField},
		{"expired", func(o *Offer) { o.Expires = t0 }, CodeExpired},
		{"expiry far ahead", func(o *Offer) { o.Expires = t0 + MaxOfferTTL + 1 }, CodeExpiry},
		{"expiry at the limit", func(o *Offer) { o.Expires = t0 + MaxOfferTTL }, ""},
		{"load above 1000", func(o *Offer) { o.Load = 1001 }, CodeField},
		{"no cpu", func(o *Offer) { o.Total.CPU, o.Free.CPU = 0, 0 }, CodeResources},
		{"absurd cpu", func(o *Offer) { o.Total.CPU = MaxCPU + 1 }, CodeResources},
		{"absurd memory", func(o *Offer) { o.Total.MemMiB = math.MaxUint64 }, CodeResources},
		{"absurd disk", func(o *Offer) { o.Total.DiskMiB = MaxDiskMiB + 1 }, CodeResources},
		{"absurd gpus", func(o *Offer) { o.Total.GPUs = MaxGPUs + 1 }, CodeResources},
		{"gpu model without gpus", func(o *Offer) { o.Total.GPUModel = "a100" }, CodeResources},
		{"free above total", func(o *Offer) { o.Free.MemMiB = o.Total.MemMiB + 1 }, CodeResources},
		{"free gpu model differs", func(o *Offer) {
			o.Total.GPUs, o.Total.GPUModel, o.Free.GPUs, o.Free.GPUModel = 2, "a100", 1, "h100"
		}, CodeResources},
		{"no executor", func(o *Offer) { o.Executors = nil }, CodeExecutor},
		{"unknown executor", func(o *Offer) { o.Executors = []string{"qemu"} }, CodeExecutor},
		{"executors unsorted", func(o *Offer) { o.Executors = []string{ExecWASM, ExecExec} }, CodeField},
		{"bad region", func(o *Offer) { o.Region = "EU West" }, CodeField},
		{"bad label", func(o *Offer) { o.Labels = []string{"noequals"} }, CodeField},
		{"labels unsorted", func(o *Offer) { o.Labels = []string{"b=1", "a=1"} }, CodeField},
		{"labels duplicated", func(o *Offer) { o.Labels = []string{"a=1", "a=1"} }, CodeField},
		{"overflowing cpu price", func(o *Offer) { o.Terms.PerCPUSecond = math.MaxUint64 / 1000 }, CodePrice},
		{"overflowing memory price", func(o *Offer) { o.Terms.PerGiBSecond = math.MaxUint64 / 10 }, CodePrice},
		{"overflowing sum", func(o *Offer) { o.Terms.PerJob = math.MaxUint64 }, CodePrice},
		{"long signature", func(o *Offer) { o.Sig = make([]byte, 65) }, CodeSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := baseOffer(1)
			o.Provider = testKey(t, 1).Public()
			c.mut(&o)
			err := o.Validate(t0)
			if got := CodeOf(err); got != c.want {
				t.Fatalf("Validate = %v, want code %q", err, c.want)
			}
			var ie *InvalidError
			if err != nil && (!errors.As(err, &ie) || ie.Field == "") {
				t.Fatalf("error %v names no field", err)
			}
		})
	}
}

func TestBidValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Bid)
		want Code
	}{
		{"valid", func(*Bid) {}, ""},
		{"no client", func(b *Bid) { b.Client = wallet.PublicKey{} }, CodeField},
		{"unknown executor", func(b *Bid) { b.Executor = "jvm" }, CodeExecutor},
		{"zero max price", func(b *Bid) { b.MaxPrice = 0 }, CodePrice},
		{"expired", func(b *Bid) { b.MatchBy = t0 - 1 }, CodeExpired},
		{"match-by far ahead", func(b *Bid) { b.MatchBy = t0 + MaxBidTTL + 1 }, CodeExpiry},
		{"negative timeout", func(b *Bid) { b.TimeoutMs = -1 }, CodeField},
		{"timeout too long", func(b *Bid) { b.TimeoutMs = MaxTimeoutMs + 1 }, CodeField},
		{"unknown preference", func(b *Bid) { b.Preference = "random" }, CodeField},
		{"no preference", func(b *Bid) { b.Preference = "" }, CodeField},
		{"seventeen replicas", func(b *Bid) { b.Replicas = MaxReplicas + 1 }, CodeField},
		{"replica index at the count", func(b *Bid) { b.Replicas, b.Replica = 2, 2 }, CodeField},
		{"zero replicas", func(b *Bid) { b.Replicas = 0 }, CodeField},
		{"reputation above scale", func(b *Bid) { b.Constraints.MinReputation = 1001 }, CodeField},
		{"no memory", func(b *Bid) { b.Resources.MemMiB = 0 }, CodeResources},
		{"absurd cpu", func(b *Bid) { b.Resources.CPU = math.MaxUint64 }, CodeResources},
		{"gpu model without gpus", func(b *Bid) { b.Resources.GPUModel = "a100" }, CodeResources},
		{"short payload hash", func(b *Bid) { b.Payload.SHA256 = b.Payload.SHA256[:31] }, CodePayload},
		{"empty payload", func(b *Bid) { b.Payload.Size = 0 }, CodePayload},
		{"huge payload", func(b *Bid) { b.Payload.Size = MaxPayloadSize + 1 }, CodePayload},
		{"payload without peer", func(b *Bid) { b.Payload.Peer = "" }, CodePayload},
		{"image for wasm", func(b *Bid) { b.Payload = Payload{Image: "alpine:3"} }, CodePayload},
		{"image and hash", func(b *Bid) { b.Executor = ExecDocker; b.Payload.Image = "alpine:3" }, CodePayload},
		{"image for docker", func(b *Bid) { b.Executor = ExecDocker; b.Payload = Payload{Image: "alpine:3"} }, ""},
		{"image tarball with its image id", func(b *Bid) { b.Executor = ExecDocker; b.Payload.Image = "sha256:" + strings.Repeat("0f", 32) }, ""},
		{"image tarball with a tag", func(b *Bid) { b.Executor = ExecDocker; b.Payload.Image = "alpine:3" }, CodePayload},
		{"image tarball for wasm", func(b *Bid) { b.Payload.Image = "sha256:" + strings.Repeat("0f", 32) }, CodePayload},
		{"manifest", func(b *Bid) { b.Payload.Manifest = make([]byte, 32) }, ""},
		{"short manifest hash", func(b *Bid) { b.Payload.Manifest = make([]byte, 31) }, CodePayload},
		{"manifest without peer", func(b *Bid) { b.Payload.Manifest = make([]byte, 32); b.Payload.Peer = "" }, CodePayload},
		{"image with manifest", func(b *Bid) {
			b.Executor = ExecDocker
			b.Payload = Payload{Image: "alpine:3", Peer: "peer", Manifest: make([]byte, 32)}
		}, ""},
		{"image with manifest but no peer", func(b *Bid) {
			b.Executor = ExecDocker
			b.Payload = Payload{Image: "alpine:3", Manifest: make([]byte, 32)}
		}, CodePayload},
		{"image with a peer and no manifest", func(b *Bid) { b.Executor = ExecDocker; b.Payload = Payload{Image: "alpine:3", Peer: "peer"} }, CodePayload},
		{"bad region constraint", func(b *Bid) { b.Constraints.Regions = []string{"Mars!"} }, CodeField},
		{"regions unsorted", func(b *Bid) { b.Constraints.Regions = []string{"us-east", "eu-west"} }, CodeField},
		{"bad label constraint", func(b *Bid) { b.Constraints.Labels = []string{"=x"} }, CodeField},
		{"near repeated", func(b *Bid) { b.Near = []string{"eu-west", "eu-west"} }, CodeField},
		{"near unsorted is fine", func(b *Bid) { b.Near = []string{"us-east", "eu-west"} }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := baseBid(1)
			b.Client = testKey(t, 2).Public()
			c.mut(&b)
			if got := CodeOf(b.Validate(t0)); got != c.want {
				t.Fatalf("Validate = %v, want code %q", b.Validate(t0), c.want)
			}
		})
	}
}

func TestPricing(t *testing.T) {
	max := uint64(math.MaxUint64)
	cases := []struct {
		name    string
		terms   PriceTerms
		res     Resources
		ms      int64
		want    uint64
		wantErr bool
	}{
		{"free", PriceTerms{}, Resources{CPU: 1000, MemMiB: 1024}, 1000, 0, false},
		{"one core second", PriceTerms{PerCPUSecond: 7}, Resources{CPU: 1000}, 1000, 7, false},
		{"one GiB second", PriceTerms{PerGiBSecond: 5}, Resources{MemMiB: 1024}, 1000, 5, false},
		{"fixed only", PriceTerms{PerJob: 9}, Resources{CPU: 1}, 1, 9, false},
		{"rounds up", PriceTerms{PerCPUSecond: 1}, Resources{CPU: 1}, 1, 1, false},
		{"half core for 3 s", PriceTerms{PerCPUSecond: 3, PerGiBSecond: 1, PerJob: 1}, Resources{CPU: 500, MemMiB: 512}, 3000, 5 + 2 + 1, false},
		{"overflow in the 128-bit quotient", PriceTerms{PerCPUSecond: 1 << 40}, Resources{CPU: MaxCPU}, MaxTimeoutMs, 0, true}, // 2^60 × 604.8
		{"overflowing cpu", PriceTerms{PerCPUSecond: max}, Resources{CPU: MaxCPU}, MaxTimeoutMs, 0, true},
		{"overflowing sum", PriceTerms{PerJob: max, PerCPUSecond: 1}, Resources{CPU: 1000}, 1000, 0, true},
		{"negative timeout", PriceTerms{}, Resources{}, -1, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := priceOf(c.terms, c.res, c.ms)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("priceOf = %d, %v; want %d (err %v)", got, err, c.want, c.wantErr)
			}
		})
	}
	// A 128-bit intermediate whose quotient fits: 2^40 × 2^30 / 1e6.
	q, err := mulDivCeil(1<<40, 1, 1<<30, cpuDiv)
	if want := uint64((1<<70)/1_000_000) + 1; err != nil || q != want {
		t.Fatalf("mulDivCeil 128-bit = %d, %v; want %d", q, err, want)
	}
}

// Cost agrees with PriceFor on full use, is monotone in usage, and Settle
// splits the escrow exactly.
func TestCostAndSettle(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 9))
	for i := 0; i < 2000; i++ {
		o, b := baseOffer(1), baseBid(1)
		o.Terms = PriceTerms{PerCPUSecond: r.Uint64N(1000), PerGiBSecond: r.Uint64N(1000), PerJob: r.Uint64N(1000)}
		b.Resources = Resources{CPU: 1 + r.Uint64N(4000), MemMiB: 1 + r.Uint64N(8192)}
		b.TimeoutMs = 1 + r.Int64N(MaxTimeoutMs)
		price, err := PriceFor(&o, &b)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		b.MaxPrice = price + r.Uint64N(1000)
		m := &Match{Offer: o, Bid: b, Price: price}
		full := Usage{CPUMs: b.Resources.CPU * uint64(b.TimeoutMs) / 1000, MemMiBMs: b.Resources.MemMiB * uint64(b.TimeoutMs)}
		cfull, err := Cost(o.Terms, full)
		if err != nil || cfull > price {
			t.Fatalf("seed %d: full usage costs %d (%v), above the quote %d", seed, cfull, err, price)
		}
		u := Usage{CPUMs: r.Uint64N(full.CPUMs + 1), MemMiBMs: r.Uint64N(full.MemMiBMs + 1)}
		cu, _ := Cost(o.Terms, u)
		if cu > cfull {
			t.Fatalf("seed %d: less usage costs more: %d > %d", seed, cu, cfull)
		}
		over := Usage{CPUMs: math.MaxUint64, MemMiBMs: math.MaxUint64}
		for _, use := range []Usage{{}, u, full, over} {
			p, err := Settle(m, use)
			if err != nil {
				t.Fatalf("seed %d: settle: %v", seed, err)
			}
			if p.Provider+p.Refund != m.Escrow() || p.Provider > price {
				t.Fatalf("seed %d: settle %+v: payout %+v, escrow %d, price %d", seed, use, p, m.Escrow(), price)
			}
		}
		if p, _ := Settle(m, over); p.Provider != cfull {
			t.Fatalf("seed %d: usage above the match pays %d, want the full-use cost %d", seed, p.Provider, cfull)
		}
	}
}

func TestResourcesArithmetic(t *testing.T) {
	a := Resources{CPU: 5, MemMiB: 6, DiskMiB: 7, GPUs: 1}
	s, err := a.Add(a)
	if err != nil || s != (Resources{CPU: 10, MemMiB: 12, DiskMiB: 14, GPUs: 2}) {
		t.Fatalf("Add = %v, %v", s, err)
	}
	if _, err := (Resources{CPU: math.MaxUint64}).Add(Resources{CPU: 1}); !errors.Is(err, ErrOverflow) {
		t.Fatalf("overflowing Add: %v", err)
	}
	if d, err := s.Sub(a); err != nil || d != a {
		t.Fatalf("Sub = %v, %v", d, err)
	}
	if _, err := a.Sub(s); !errors.Is(err, ErrOverflow) {
		t.Fatalf("underflowing Sub: %v", err)
	}
	if av := Available(a, s); !av.IsZero() {
		t.Fatalf("Available over-reserved = %v, want zero", av)
	}
	if !Fits(Resources{GPUs: 1, GPUModel: "a100"}, Resources{GPUs: 1, GPUModel: "a100"}) ||
		Fits(Resources{GPUs: 1, GPUModel: "h100"}, Resources{GPUs: 1, GPUModel: "a100"}) ||
		!Fits(Resources{GPUs: 1}, Resources{GPUs: 1, GPUModel: "a100"}) {
		t.Fatal("Fits mishandles gpu models")
	}
}

func TestResultDeadline(t *testing.T) {
	m := &Match{Bid: Bid{TimeoutMs: 1000}}
	tests := []struct {
		name          string
		matchedAt, gr int64
		want          int64
	}{
		{"default grace", t0, DefaultResultGraceMs, t0 + 1000 + DefaultResultGraceMs},
		{"short grace", t0, 1000, t0 + 2000},
		{"day grace", t0, 24 * 60 * 60 * 1000, t0 + 1000 + 24*60*60*1000},
		{"zero grace", t0, 0, t0 + 1000},
		{"saturates at the end of time", math.MaxInt64 - 5, DefaultResultGraceMs, math.MaxInt64},
		{"grace alone saturates", math.MaxInt64 - 1500, 1000, math.MaxInt64},
	}
	for _, tc := range tests {
		if got := m.ResultDeadline(tc.matchedAt, tc.gr); got != tc.want {
			t.Errorf("%s: ResultDeadline(%d, %d) = %d, want %d", tc.name, tc.matchedAt, tc.gr, got, tc.want)
		}
	}
}

func FuzzDecodeOffer(f *testing.F) {
	o := signedOffer(f, testKey(f, 1), baseOffer(1))
	good, _ := o.Encode()
	f.Add(good)
	f.Add([]byte{0xa0})
	f.Add(good[:10])
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := DecodeOffer(data)
		if err != nil {
			if CodeOf(err) != CodeDecode {
				t.Fatalf("decode error without the decode code: %v", err)
			}
			return
		}
		again, err := o.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded offer does not re-encode to its bytes: %v", err)
		}
		_ = o.Validate(t0)
		_ = o.Verify(testChain)
		_ = o.ID()
	})
}

func FuzzDecodeBid(f *testing.F) {
	b := signedBid(f, testKey(f, 2), baseBid(1))
	good, _ := b.Encode()
	f.Add(good)
	f.Add([]byte{0xa0})
	f.Add(good[:20])
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBid(data)
		if err != nil {
			if CodeOf(err) != CodeDecode {
				t.Fatalf("decode error without the decode code: %v", err)
			}
			return
		}
		again, err := b.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("decoded bid does not re-encode to its bytes: %v", err)
		}
		_ = b.Validate(t0)
		_ = b.Verify(testChain)
		_ = b.ID()
	})
}

func FuzzDecodeMatch(f *testing.F) {
	o := signedOffer(f, testKey(f, 1), baseOffer(1))
	b := signedBid(f, testKey(f, 2), baseBid(1))
	m := &Match{Offer: *o, Bid: *b, Price: 760}
	good, _ := m.Encode()
	f.Add(good)
	f.Add([]byte{0xa3, 0x01, 0xa0, 0x02, 0xa0, 0x03, 0x00})
	view := newFakeView(0)
	view.providers[o.ProviderAddress()] = ProviderState{Collateral: 1}
	view.balances[b.ClientAddress()] = 1 << 40
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMatch(data)
		if err != nil {
			return
		}
		if err := CheckMatch(testChain, m, view, t0); err != nil && CodeOf(err) == "" {
			t.Fatalf("CheckMatch error without a code: %v", err)
		}
		_, _ = Settle(m, Usage{CPUMs: 1 << 62, MemMiBMs: 1 << 62})
	})
}
