package consensus

import "testing"

// TestProposalEquivocationReported: a second, different proposal signed by
// the round's proposer is reported as ProposalEquivocation and does not
// replace the first; the same proposal again, or one signed by another
// validator, is not reported.
func TestProposalEquivocationReported(t *testing.T) {
	keys, vs := testValidators(t, 1, 1, 1, 1)
	var prop, self int
	for i, k := range keys {
		if k.Address() == vs.Proposer(0).Address {
			prop = i
		}
	}
	self = (prop + 1) % len(keys)
	st, err := New(fastConfig(), testChain, keys[self], 1, vs, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Start(1)
	reports := func(p *Proposal) int {
		n := 0
		for _, o := range st.Step(Input{Now: 2, Event: ReceiveProposal{Proposal: p}}) {
			if e, ok := o.(ProposalEquivocation); ok {
				if e.First.Proposer != keys[prop].Address() {
					t.Fatalf("reported against %s", e.First.Proposer)
				}
				n++
			}
		}
		return n
	}
	first := signProposal(keys[prop], 1, 0, []byte("first"), -1)
	if got := reports(first); got != 0 {
		t.Fatalf("the first proposal gave %d reports", got)
	}
	if got := reports(first); got != 0 {
		t.Fatalf("the same proposal again gave %d reports", got)
	}
	if got := reports(signProposal(keys[self], 1, 0, []byte("not the proposer"), -1)); got != 0 {
		t.Fatalf("a proposal by a non-proposer gave %d reports", got)
	}
	if got := reports(signProposal(keys[prop], 1, 0, []byte("second"), -1)); got != 1 {
		t.Fatalf("a second proposal by the proposer gave %d reports, want 1", got)
	}
	if msgs := st.Messages(1); len(msgs) == 0 || msgs[0].Proposal == nil || msgs[0].Proposal.BlockID != first.BlockID {
		t.Fatal("the first proposal was replaced")
	}
}
