package consensus

import (
	"bytes"
	"errors"
	"testing"

	"github.com/bourse-net/bourse/codec"
)

func TestVoteSignatureCoversEveryField(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	good := signVote(keys[0], Prevote, 3, 1, idOf([]byte("A")), 1234)
	if err := good.Verify(testChain, vs); err != nil {
		t.Fatalf("good vote: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(v *Vote)
		want   error
	}{
		{"type", func(v *Vote) { v.Type = Precommit }, ErrBadSignature},
		{"height", func(v *Vote) { v.Height++ }, ErrBadSignature},
		{"round", func(v *Vote) { v.Round++ }, ErrBadSignature},
		{"block id", func(v *Vote) { v.BlockID[0] ^= 1 }, ErrBadSignature},
		{"timestamp", func(v *Vote) { v.Timestamp++ }, ErrBadSignature},
		{"validator", func(v *Vote) { v.Validator = keys[1].Address() }, ErrBadSignature},
		{"signature", func(v *Vote) { v.Signature[5] ^= 1 }, ErrBadSignature},
		{"outsider", func(v *Vote) { v.Validator = testKey(t, 99).Address() }, ErrUnknownValidator},
		{"bad type", func(v *Vote) { v.Type = 7 }, ErrInvalidMessage},
		{"height 0", func(v *Vote) { v.Height = 0 }, ErrInvalidMessage},
		{"negative round", func(v *Vote) { v.Round = -1 }, ErrInvalidMessage},
		{"short signature", func(v *Vote) { v.Signature = v.Signature[:10] }, ErrInvalidMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := *good
			v.Signature = bytes.Clone(good.Signature)
			tc.mutate(&v)
			if err := v.Verify(testChain, vs); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if err := good.Verify("other-chain", vs); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("vote verified under another chain id: %v", err)
	}
}

func TestProposalChecks(t *testing.T) {
	keys, vs := testValidators(t, 1, 1)
	p := signProposal(keys[0], 1, 2, []byte("value"), 1)
	if err := p.Verify(testChain, vs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(p *Proposal)
		want   error
	}{
		{"value", func(p *Proposal) { p.Value = []byte("other") }, ErrBadSignature},
		{"valid round", func(p *Proposal) { p.ValidRound = 0 }, ErrBadSignature},
		{"valid round = round", func(p *Proposal) { p.ValidRound = 2 }, ErrInvalidMessage},
		{"valid round < -1", func(p *Proposal) { p.ValidRound = -2 }, ErrInvalidMessage},
		{"nil id", func(p *Proposal) { p.BlockID = BlockID{} }, ErrInvalidMessage},
		{"outsider", func(p *Proposal) { p.Proposer = testKey(t, 50).Address() }, ErrUnknownValidator},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *p
			tc.mutate(&c)
			if err := c.Verify(testChain, vs); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMessageRoundTrip(t *testing.T) {
	keys, _ := testValidators(t, 1)
	for _, m := range []Message{
		{Vote: signVote(keys[0], Precommit, 9, 4, idOf([]byte("x")), -5)},
		{Vote: signVote(keys[0], Prevote, 1, 0, BlockID{}, 0)},
		{Proposal: signProposal(keys[0], 7, 3, []byte("some block"), -1)},
	} {
		b, err := EncodeMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := EncodeMessage(got)
		if !bytes.Equal(b, again) {
			t.Fatal("round trip changed the encoding")
		}
	}
	if _, err := EncodeMessage(Message{}); err == nil {
		t.Fatal("empty message encoded")
	}
	v := signVote(keys[0], Prevote, 1, 0, BlockID{}, 0)
	vb, _ := EncodeVote(v)
	if _, err := DecodeVote(vb); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeVote(append(vb, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, err := DecodeVote(bytes.Repeat([]byte{0x40}, MaxVoteBytes+1)); !errors.Is(err, codec.ErrTooLarge) {
		t.Fatalf("oversize vote: %v", err)
	}
	both, _ := codec.Marshal(Message{Vote: v, Proposal: signProposal(keys[0], 1, 0, []byte("v"), -1)})
	if _, err := DecodeMessage(both); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("message with two payloads: %v", err)
	}
	// A non-canonical encoding of a valid vote (a 1-byte integer spelled in 2 bytes).
	nc := bytes.Replace(vb, []byte{0x01, 0x01}, []byte{0x01, 0x18, 0x01}, 1)
	if _, err := DecodeVote(nc); err == nil {
		t.Fatal("non-canonical vote accepted")
	}
}

func TestCommitCertificateVerify(t *testing.T) {
	keys, vs := testValidators(t, 5, 1, 1, 1, 2) // total 10; >2/3 needs 7
	id := idOf([]byte("B"))
	cert := func(idx ...int) *CommitCertificate {
		c := &CommitCertificate{Height: 4, Round: 2, BlockID: id}
		for _, i := range idx {
			c.Precommits = append(c.Precommits, *signVote(keys[i], Precommit, 4, 2, id, int64(100*i)))
		}
		return c
	}
	for _, tc := range []struct {
		name   string
		c      *CommitCertificate
		mutate func(c *CommitCertificate)
		want   error
	}{
		{"5+2 of 10", cert(0, 4), nil, nil},
		{"5+1+1 of 10", cert(0, 1, 2), nil, nil},
		{"4 validators of 5 but 5 of 10 power", cert(1, 2, 3, 4), nil, ErrInsufficientPower},
		{"exactly 2/3 is not enough", cert(0, 1), nil, ErrInsufficientPower},
		{"duplicate voter", cert(0, 1, 1), nil, ErrInvalidMessage},
		{"vote for another block", cert(0, 4), func(c *CommitCertificate) {
			c.Precommits[1] = *signVote(keys[4], Precommit, 4, 2, idOf([]byte("C")), 0)
		}, ErrInvalidMessage},
		{"prevote", cert(0, 4), func(c *CommitCertificate) {
			c.Precommits[1] = *signVote(keys[4], Prevote, 4, 2, id, 0)
		}, ErrInvalidMessage},
		{"other round", cert(0, 4), func(c *CommitCertificate) { c.Round = 3 }, ErrInvalidMessage},
		{"bad signature", cert(0, 4), func(c *CommitCertificate) { c.Precommits[0].Timestamp++ }, ErrBadSignature},
		{"outsider", cert(0, 4), func(c *CommitCertificate) {
			c.Precommits = append(c.Precommits, *signVote(testKey(t, 77), Precommit, 4, 2, id, 0))
		}, ErrUnknownValidator},
		{"nil block", cert(0, 4), func(c *CommitCertificate) { c.BlockID = BlockID{} }, ErrInvalidMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mutate != nil {
				tc.mutate(tc.c)
			}
			err := tc.c.Verify(testChain, vs)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	b, _ := EncodeCommit(cert(0, 1, 2))
	c, err := DecodeCommit(b)
	if err != nil || c.Verify(testChain, vs) != nil {
		t.Fatalf("round trip: %v", err)
	}
}

func TestCommitTimeIsStakeWeightedMedian(t *testing.T) {
	keys, vs := testValidators(t, 5, 1, 1, 1, 2)
	id := idOf([]byte("B"))
	mk := func(ts ...int64) *CommitCertificate {
		c := &CommitCertificate{Height: 1, BlockID: id}
		for i, x := range ts {
			if x >= 0 {
				c.Precommits = append(c.Precommits, *signVote(keys[i], Precommit, 1, 0, id, x))
			}
		}
		return c
	}
	for _, tc := range []struct {
		ts   []int64
		want int64
	}{
		// powers 5,1,1,1,2 (total 10): the median is where the running
		// power first exceeds half of the certificate's power.
		{[]int64{100, 200, 300, 400, 500}, 200},     // 5 at 100 is exactly half; 200 tips it
		{[]int64{900, 1, 2, 3, 4}, 900},             // 1,2,3,4 carry 5 of 10: not more than half
		{[]int64{50, -1, -1, -1, 60}, 50},           // only 7 voted: 5 of 7 is a majority
		{[]int64{10, 20, 30, 1 << 40, 1 << 50}, 20}, // late outliers cannot move it
		{[]int64{1000, 100, 100, 100, 100}, 1000},   // ties summed
	} {
		if got := mk(tc.ts...).Time(vs); got != tc.want {
			t.Errorf("Time(%v) = %d, want %d", tc.ts, got, tc.want)
		}
	}
}

func TestDuplicateVoteEvidence(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	a := *signVote(keys[1], Prevote, 2, 1, idOf([]byte("A")), 0)
	b := *signVote(keys[1], Prevote, 2, 1, BlockID{}, 0)
	e := NewDuplicateVoteEvidence(a, b)
	if e2 := NewDuplicateVoteEvidence(b, a); e2.A.BlockID != e.A.BlockID {
		t.Fatal("evidence order depends on argument order")
	}
	if err := e.Verify(testChain, vs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		a, b Vote
	}{
		{"same block", a, a},
		{"other validator", a, *signVote(keys[2], Prevote, 2, 1, BlockID{}, 0)},
		{"other round", a, *signVote(keys[1], Prevote, 2, 2, BlockID{}, 0)},
		{"other type", a, *signVote(keys[1], Precommit, 2, 1, BlockID{}, 0)},
		{"other height", a, *signVote(keys[1], Prevote, 3, 1, BlockID{}, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewDuplicateVoteEvidence(tc.a, tc.b)
			if err := e.Verify(testChain, vs); !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	forged := e
	forged.B.Signature = bytes.Clone(forged.B.Signature)
	forged.B.Signature[0] ^= 1
	if err := forged.Verify(testChain, vs); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged evidence: %v", err)
	}
	swapped := DuplicateVoteEvidence{A: e.B, B: e.A}
	if err := swapped.Verify(testChain, vs); err == nil {
		t.Fatal("out-of-order evidence accepted")
	}
	enc, _ := EncodeEvidence(&e)
	got, err := DecodeEvidence(enc)
	if err != nil || got.Verify(testChain, vs) != nil {
		t.Fatalf("round trip: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.TimeoutPrevote = 0
	if err := c.Validate(); err == nil || !bytes.Contains([]byte(err.Error()), []byte("TimeoutPrevote")) {
		t.Fatalf("err = %v, want one naming TimeoutPrevote", err)
	}
	c = DefaultConfig()
	c.TimeoutCommit = -1
	if err := c.Validate(); err == nil {
		t.Fatal("negative TimeoutCommit accepted")
	}
	c.TimeoutCommit = 0
	if err := c.Validate(); err != nil {
		t.Fatalf("zero TimeoutCommit rejected: %v", err)
	}
}
