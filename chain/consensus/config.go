package consensus

import (
	"fmt"
	"time"
)

// Config holds the round timeouts. The timeout of a step in round r is
// base + r·delta (the paper's timeoutPropose(r) etc., growing per round so
// that after GST some round lasts long enough for correct processes to hear
// each other).
type Config struct {
	// TimeoutPropose is how long a validator waits for the round's proposal
	// before prevoting nil (line 57). Default 3s.
	TimeoutPropose time.Duration
	// TimeoutProposeDelta is added per round. Default 500ms.
	TimeoutProposeDelta time.Duration
	// TimeoutPrevote is how long a validator waits, after seeing prevotes from
	// more than 2/3 of the power for anything, before precommitting nil
	// (line 61). Default 1s.
	TimeoutPrevote time.Duration
	// TimeoutPrevoteDelta is added per round. Default 500ms.
	TimeoutPrevoteDelta time.Duration
	// TimeoutPrecommit is how long a validator waits, after seeing precommits
	// from more than 2/3 of the power for anything, before moving to the next
	// round (line 65). Default 1s.
	TimeoutPrecommit time.Duration
	// TimeoutPrecommitDelta is added per round. Default 500ms.
	TimeoutPrecommitDelta time.Duration
	// TimeoutCommit is the wait after NextHeight before round 0 starts, so
	// late precommits and slow validators catch up. Zero starts at once.
	// Default 1s.
	TimeoutCommit time.Duration
	// IdleWait, when positive, lets a quiet chain rest: a height whose
	// commit wait ended with no Wake from the application and no message
	// of the height from another validator waits up to IdleWait more
	// before round 0 (and its empty block). A Wake or such a message ends
	// the wait at once. Zero: round 0 starts after TimeoutCommit, as in
	// the paper. Default 0.
	IdleWait time.Duration
}

// DefaultConfig returns the production timeouts (CometBFT's defaults).
func DefaultConfig() Config {
	return Config{
		TimeoutPropose:        3 * time.Second,
		TimeoutProposeDelta:   500 * time.Millisecond,
		TimeoutPrevote:        time.Second,
		TimeoutPrevoteDelta:   500 * time.Millisecond,
		TimeoutPrecommit:      time.Second,
		TimeoutPrecommitDelta: 500 * time.Millisecond,
		TimeoutCommit:         time.Second,
	}
}

// Validate names the first bad field: base timeouts must be positive,
// deltas and TimeoutCommit non-negative.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
		pos  bool
	}{
		{"TimeoutPropose", c.TimeoutPropose, true},
		{"TimeoutProposeDelta", c.TimeoutProposeDelta, false},
		{"TimeoutPrevote", c.TimeoutPrevote, true},
		{"TimeoutPrevoteDelta", c.TimeoutPrevoteDelta, false},
		{"TimeoutPrecommit", c.TimeoutPrecommit, true},
		{"TimeoutPrecommitDelta", c.TimeoutPrecommitDelta, false},
		{"TimeoutCommit", c.TimeoutCommit, false},
		{"IdleWait", c.IdleWait, false},
	} {
		if f.d < 0 || (f.pos && f.d == 0) {
			return fmt.Errorf("consensus config: %s must be %s, got %v", f.name, map[bool]string{true: "positive", false: "non-negative"}[f.pos], f.d)
		}
	}
	return nil
}

// maxTimeoutRound caps the round used in base + round·delta so the product
// cannot overflow; past it timeouts stop growing.
const maxTimeoutRound = 1 << 16

// timeout is the duration of step's timeout in round r.
func (c Config) timeout(step RoundStep, r int32) time.Duration {
	r = min(max(r, 0), maxTimeoutRound)
	switch step {
	case StepPropose:
		return c.TimeoutPropose + time.Duration(r)*c.TimeoutProposeDelta
	case StepPrevote:
		return c.TimeoutPrevote + time.Duration(r)*c.TimeoutPrevoteDelta
	case StepPrecommit:
		return c.TimeoutPrecommit + time.Duration(r)*c.TimeoutPrecommitDelta
	case StepIdle:
		return c.IdleWait
	default:
		return c.TimeoutCommit
	}
}
