// Package clock is the seam between code that schedules and the time it
// schedules in: Real for a running node, Manual for tests that advance
// virtual time by hand (no sleeps, no flakes, the same run every time).
//
//	clk := clock.NewManual(time.UnixMilli(1_700_000_000_000))
//	t := clk.AfterFunc(time.Second, fire)
//	clk.Advance(999 * time.Millisecond) // nothing yet
//	clk.Advance(time.Millisecond)       // fire runs, on this goroutine
package clock

import (
	"slices"
	"sync"
	"time"
)

// Clock tells the time and runs functions after a duration of it.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f once d has passed (on its own goroutine for Real,
	// inside Advance for Manual), unless the returned Timer is stopped
	// first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface {
	// Stop prevents the function from running; it reports whether it did
	// (false: it already ran or was stopped).
	Stop() bool
}

// Real is the wall clock and the runtime's timers.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Manual is a virtual clock: time stands still until Advance or Set moves
// it, and then the functions that came due run in order of their due time
// (then of scheduling), on the caller's goroutine, without the lock held
// (they may schedule more). Safe for concurrent use.
type Manual struct {
	mu     sync.Mutex
	now    time.Time
	seq    uint64
	timers []*manualTimer
}

type manualTimer struct {
	c   *Manual
	at  time.Time
	seq uint64
	f   func()
}

// NewManual is a Manual clock that reads start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

// Now is the virtual time.
func (c *Manual) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d. A d of zero or less is due at once: it
// runs at the next Advance (even by zero), not inside AfterFunc.
func (c *Manual) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, at: c.now.Add(max(d, 0)), seq: c.seq, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.timers, t)
	if i < 0 {
		return false
	}
	c.timers = slices.Delete(c.timers, i, i+1)
	return true
}

// Advance moves the clock forward by d (d < 0 is treated as 0), running
// every function due on the way, each with the clock set to its due time.
func (c *Manual) Advance(d time.Duration) {
	c.Set(c.Now().Add(max(d, 0)))
}

// Set moves the clock to t (never backwards), running every function due
// by then in due order.
func (c *Manual) Set(t time.Time) {
	for {
		c.mu.Lock()
		next := -1
		for i, tm := range c.timers {
			if tm.at.After(t) {
				continue
			}
			if next < 0 || tm.at.Before(c.timers[next].at) || (tm.at.Equal(c.timers[next].at) && tm.seq < c.timers[next].seq) {
				next = i
			}
		}
		if next < 0 {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		tm := c.timers[next]
		c.timers = slices.Delete(c.timers, next, next+1)
		if tm.at.After(c.now) {
			c.now = tm.at
		}
		c.mu.Unlock()
		tm.f()
	}
}

// Pending is the number of scheduled functions not yet run or stopped.
func (c *Manual) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next is the due time of the earliest pending function, and false when
// none is pending: a test can jump straight to it.
func (c *Manual) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return time.Time{}, false
	}
	at := c.timers[0].at
	for _, tm := range c.timers[1:] {
		if tm.at.Before(at) {
			at = tm.at
		}
	}
	return at, true
}
