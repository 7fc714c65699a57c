package svclife

import (
	"fmt"
	"time"
)

// Elastic is the scaling policy the owner's node applies to its services,
// between each service's MinReplicas and MaxReplicas: one replica more
// when the gateway's p99 latency passes TargetP99 or the requests in
// flight per replica pass TargetOutstanding; one less when both stay
// below DownFraction of their targets for DownAfter consecutive Load
// reports; never a step within Cooldown of the last; never up unless the
// budget funds BudgetPeriods more periods of every replica after the step.
// Every step is a ServiceScale transaction.
type Elastic struct {
	TargetP99         time.Duration // default 200ms
	TargetOutstanding float64       // default 4
	DownFraction      float64       // default 0.25
	DownAfter         int           // default 20 (ten seconds of the node's 500 ms reports)
	Cooldown          time.Duration // default 5s
	BudgetPeriods     uint64        // default 3
	// Off disables scaling (the client scales by hand).
	Off bool
}

func (e Elastic) withDefaults() Elastic {
	if e.TargetP99 <= 0 {
		e.TargetP99 = 200 * time.Millisecond
	}
	if e.TargetOutstanding <= 0 {
		e.TargetOutstanding = 4
	}
	if e.DownFraction <= 0 || e.DownFraction >= 1 {
		e.DownFraction = 0.25
	}
	if e.DownAfter <= 0 {
		e.DownAfter = 20
	}
	if e.Cooldown <= 0 {
		e.Cooldown = 5 * time.Second
	}
	if e.BudgetPeriods == 0 {
		e.BudgetPeriods = 3
	}
	return e
}

// scaleState is the controller's memory for one service.
type scaleState struct {
	lastStep time.Time
	low      int // consecutive low reports
}

// decide returns the replica count to ask for, if a step is due.
func (e Elastic) decide(now time.Time, st *scaleState, s *Service, in Load) (uint32, string, bool) {
	if e.Off {
		return 0, "", false
	}
	high := in.P99 > e.TargetP99 || in.Outstanding > e.TargetOutstanding
	low := in.P99 < time.Duration(float64(e.TargetP99)*e.DownFraction) && in.Outstanding < e.TargetOutstanding*e.DownFraction
	if low {
		st.low++
	} else {
		st.low = 0
	}
	if !st.lastStep.IsZero() && now.Sub(st.lastStep) < e.Cooldown {
		return 0, "", false
	}
	switch {
	case high && s.Replicas < s.Max:
		next := s.Replicas + 1
		need := uint64(next) * s.Price * e.BudgetPeriods
		if s.Price != 0 && need/s.Price/e.BudgetPeriods != uint64(next) || s.Budget < need {
			return 0, "", false
		}
		st.lastStep, st.low = now, 0
		return next, fmt.Sprintf("p99 %s, %.1f in flight per replica", in.P99.Round(time.Millisecond), in.Outstanding), true
	case low && st.low >= e.DownAfter && s.Replicas > s.Min:
		st.lastStep, st.low = now, 0
		return s.Replicas - 1, fmt.Sprintf("p99 %s, %.1f in flight per replica for %d reports", in.P99.Round(time.Millisecond), in.Outstanding, e.DownAfter), true
	}
	return 0, "", false
}
