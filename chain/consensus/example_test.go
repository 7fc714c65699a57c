package consensus_test

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/bourse-net/bourse/chain/consensus"
	"github.com/bourse-net/bourse/wallet"
)

// The driver's loop as the package doc shows it, for a lone validator:
// carry out each output in order, feed back what it asks for, and keep a
// clock (here a virtual one that jumps to the next timeout).
func Example() {
	key, _ := wallet.KeyFromSeed(make([]byte, 32))
	vs, _ := consensus.NewValidatorSet([]consensus.Validator{{Address: key.Address(), PubKey: key.Public(), Power: 10}})
	st, err := consensus.New(consensus.DefaultConfig(), "example-1", key, 1, vs, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	now := int64(1_700_000_000_000) // unix ms
	queue := st.Start(now)
	var timers []consensus.ScheduleTimeout
	for decided := 0; decided < 3; {
		if len(queue) == 0 { // idle: the earliest timeout fires
			t := timers[0]
			timers = timers[1:]
			now += t.Duration.Milliseconds()
			queue = st.Step(consensus.Input{Now: now, Event: consensus.Timeout{Height: t.Height, Round: t.Round, Step: t.Step}})
			continue
		}
		out := queue[0]
		queue = queue[1:]
		var in consensus.Event
		switch o := out.(type) {
		case consensus.RequestValue: // PrepareProposal: build a block
			value := fmt.Appendf(nil, "block %d", o.Height)
			in = consensus.ValueReady{Height: o.Height, Round: o.Round, BlockID: sha256.Sum256(value), Value: value}
		case consensus.ValidateValue: // ProcessProposal: check it
			in = consensus.ValueValidity{Height: o.Height, BlockID: o.BlockID, Value: o.Value, Valid: o.BlockID == sha256.Sum256(o.Value)}
		case consensus.ScheduleTimeout:
			timers = append(timers, o)
		case consensus.Decide: // FinalizeBlock: execute and store it
			fmt.Printf("height %d decided %q\n", o.Height, o.Value)
			decided++
			in = consensus.NextHeight{}
		}
		if in != nil {
			queue = append(queue, st.Step(consensus.Input{Now: now, Event: in})...)
		}
	}
	fmt.Println("virtual time passed:", time.Duration(now-1_700_000_000_000)*time.Millisecond > 0)
	// Output:
	// height 1 decided "block 1"
	// height 2 decided "block 2"
	// height 3 decided "block 3"
	// virtual time passed: true
}
