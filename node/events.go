package node

import (
	"context"
	"sync"

	"github.com/bourse-net/bourse/node/api"
)

// eventHub fans API events out to subscribers without ever blocking the
// publisher, and without losing a job's latest state: each subscriber has
// a queue that coalesces by key — a job's newer state replaces its older
// one still queued, a newer block the older block — so a subscriber that
// falls behind skips intermediate states but always receives the state a
// job ended in. The queue holds at most one event per job plus one block.
type eventHub struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one Subscribe: its queue, and the goroutine (owned by the
// subscriber's context) that moves the queue into its channel.
type subscriber struct {
	mu      sync.Mutex
	order   []string             // keys in the order first queued
	pending map[string]api.Event // the newest event of each queued key
	wake    chan struct{}
}

func newEventHub() *eventHub { return &eventHub{subs: map[*subscriber]struct{}{}} }

// subscribe returns a channel of events until ctx ends; then the channel
// is closed.
func (h *eventHub) subscribe(ctx context.Context) <-chan api.Event {
	s := &subscriber{pending: map[string]api.Event{}, wake: make(chan struct{}, 1)}
	ch := make(chan api.Event)
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	go func() {
		defer close(ch)
		defer func() {
			h.mu.Lock()
			delete(h.subs, s)
			h.mu.Unlock()
		}()
		for {
			ev, ok := s.next()
			if !ok {
				select {
				case <-ctx.Done():
					return
				case <-s.wake:
					continue
				}
			}
			select {
			case <-ctx.Done():
				return
			case ch <- ev:
			}
		}
	}()
	return ch
}

func eventKey(ev api.Event) string {
	if ev.Type == api.EventJob && ev.Job != nil {
		return "job " + ev.Job.ID
	}
	return ev.Type
}

func (s *subscriber) put(ev api.Event) {
	k := eventKey(ev)
	s.mu.Lock()
	if _, ok := s.pending[k]; !ok {
		s.order = append(s.order, k)
	}
	s.pending[k] = ev
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) next() (api.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return api.Event{}, false
	}
	k := s.order[0]
	s.order[0] = ""
	s.order = s.order[1:]
	ev := s.pending[k]
	delete(s.pending, k)
	return ev, true
}

// listened reports whether anyone subscribes, so that a block's view (a
// decode of every transaction) is built only for someone.
func (h *eventHub) listened() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs) > 0
}

func (h *eventHub) publish(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.put(ev)
	}
}

func eventBlock(b api.Block) api.Event { return api.Event{Type: api.EventBlock, Block: &b} }

func eventJob(j api.Job) api.Event { return api.Event{Type: api.EventJob, Job: &j} }
