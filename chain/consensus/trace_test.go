package consensus

import (
	"fmt"
	"strings"
)

// describeEvent and describeOutputs render inputs and outputs in one line
// each, for simulation traces and scenario goldens.
func describeEvent(ev Event) string {
	switch e := ev.(type) {
	case ReceiveProposal:
		return fmt.Sprintf("proposal %d/%d %s vr=%d by %s", e.Proposal.Height, e.Proposal.Round, e.Proposal.BlockID, e.Proposal.ValidRound, e.Proposal.Proposer.String()[:10])
	case ReceiveVote:
		return e.Vote.String()
	case Timeout:
		return fmt.Sprintf("timeout %d/%d %s", e.Height, e.Round, e.Step)
	case ValueReady:
		return fmt.Sprintf("value-ready %d/%d %s", e.Height, e.Round, e.BlockID)
	case ValueValidity:
		return fmt.Sprintf("validity %d %s %v", e.Height, e.BlockID, e.Valid)
	case NextHeight:
		return "next-height"
	case ReceiveCommit:
		return fmt.Sprintf("commit %d/%d %s", e.Commit.Height, e.Commit.Round, e.Commit.BlockID)
	}
	return fmt.Sprintf("%T", ev)
}

func describeOutputs(out []Output) string {
	var parts []string
	for _, o := range out {
		switch o := o.(type) {
		case Broadcast:
			if o.Message.Vote != nil {
				parts = append(parts, "bcast "+o.Message.Vote.String())
			} else {
				p := o.Message.Proposal
				parts = append(parts, fmt.Sprintf("bcast proposal %d/%d %s vr=%d", p.Height, p.Round, p.BlockID, p.ValidRound))
			}
		case ScheduleTimeout:
			parts = append(parts, fmt.Sprintf("timer %d/%d %s %v", o.Height, o.Round, o.Step, o.Duration))
		case Persist:
			parts = append(parts, fmt.Sprintf("persist %d/%d/%s lock=%d", o.State.Height, o.State.Round, o.State.Step, o.State.LockedRound))
		case RequestValue:
			parts = append(parts, fmt.Sprintf("request-value %d/%d", o.Height, o.Round))
		case ValidateValue:
			parts = append(parts, fmt.Sprintf("validate %d/%d %s", o.Height, o.Round, o.BlockID))
		case Decide:
			parts = append(parts, fmt.Sprintf("DECIDE %d %s", o.Height, o.BlockID))
		case Evidence:
			parts = append(parts, "evidence "+o.Evidence.A.String())
		case Rejected:
			parts = append(parts, "rejected "+o.Err.Error())
		}
	}
	return strings.Join(parts, "; ")
}
