package consensus

import (
	"testing"
)

func fuzzSeeds(f *testing.F) {
	k0 := testKey(f, 0)
	for _, m := range []Message{
		{Vote: signVote(k0, Prevote, 1, 0, BlockID{}, 0)},
		{Vote: signVote(k0, Precommit, 1, 3, idOf([]byte("A")), 99)},
		{Proposal: signProposal(k0, 1, 1, []byte("A"), 0)},
	} {
		b, err := EncodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		if m.Vote != nil {
			vb, _ := EncodeVote(m.Vote)
			f.Add(vb)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x01, 0xf6})
}

// Decoders of network input never panic, and whatever they accept
// re-encodes to the same bytes (they only accept canonical input).
func FuzzDecodeMessage(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMessage(data)
		if err != nil {
			return
		}
		b, err := EncodeMessage(m)
		if err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		if string(b) != string(data) {
			t.Fatal("accepted a non-canonical message")
		}
	})
}

func FuzzDecodeVote(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeVote(data)
		if err != nil {
			return
		}
		if err := v.ValidateBasic(); err != nil {
			t.Fatalf("decoded vote fails ValidateBasic: %v", err)
		}
	})
}

func FuzzDecodeProposal(f *testing.F) {
	fuzzSeeds(f)
	f.Add(mustEncode(EncodeProposal(signProposal(testKey(f, 0), 2, 1, []byte("x"), -1))))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := DecodeProposal(data); err == nil {
			if err := p.ValidateBasic(); err != nil {
				t.Fatalf("decoded proposal fails ValidateBasic: %v", err)
			}
		}
	})
}

func FuzzDecodeCommit(f *testing.F) {
	keys, vs := testValidators(f, 1, 1, 1)
	id := idOf([]byte("A"))
	c := &CommitCertificate{Height: 1, BlockID: id}
	for _, k := range keys {
		c.Precommits = append(c.Precommits, *signVote(k, Precommit, 1, 0, id, 5))
	}
	f.Add(mustEncode(EncodeCommit(c)))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommit(data)
		if err != nil {
			return
		}
		_ = c.Verify(testChain, vs) // must not panic
		_ = c.Time(vs)
	})
}

func FuzzDecodeEvidence(f *testing.F) {
	keys, vs := testValidators(f, 1, 1)
	e := NewDuplicateVoteEvidence(*signVote(keys[0], Prevote, 1, 0, BlockID{}, 0), *signVote(keys[0], Prevote, 1, 0, idOf([]byte("A")), 0))
	f.Add(mustEncode(EncodeEvidence(&e)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if e, err := DecodeEvidence(data); err == nil {
			_ = e.Verify(testChain, vs)
		}
	})
}

// FuzzStep feeds decoded network messages to a running validator: whatever
// arrives, the state machine neither panics nor signs twice at one step.
func FuzzStep(f *testing.F) {
	keys, vs := testValidators(f, 1, 1, 1, 1)
	fuzzSeeds(f)
	for _, k := range keys[1:] {
		b, _ := EncodeMessage(Message{Vote: signVote(k, Prevote, 1, 0, idOf([]byte("A")), 0)})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := New(fastConfig(), testChain, keys[0], 1, vs, nil)
		if err != nil {
			t.Fatal(err)
		}
		signed := map[hrt]BlockID{}
		check := func(out []Output) {
			for _, o := range out {
				if b, ok := o.(Broadcast); ok && b.Message.Vote != nil {
					v := b.Message.Vote
					k := hrt{v.Height, v.Round, v.Type}
					if old, ok := signed[k]; ok && old != v.BlockID {
						t.Fatalf("signed two %ss at %d/%d", v.Type, v.Height, v.Round)
					}
					signed[k] = v.BlockID
				}
			}
		}
		check(st.Start(0))
		// Split the input into messages at every 0xff byte boundary.
		start := 0
		for i := 0; i <= len(data); i++ {
			if i < len(data) && data[i] != 0xff {
				continue
			}
			if m, err := DecodeMessage(data[start:i]); err == nil {
				check(st.Step(Input{Now: int64(i), Event: msgEvent(m)}))
			}
			check(st.Step(Input{Now: int64(i), Event: Timeout{Height: 1, Round: st.Round(), Step: StepPropose}}))
			start = i + 1
		}
	})
}

func mustEncode(b []byte, err error) []byte {
	if err != nil {
		panic(err) // encoding fixed test values: a broken test
	}
	return b
}
