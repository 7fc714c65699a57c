package node

import (
	"context"
	"sync"

	"github.com/bourse-net/bourse/node/api"
)

// eventHub fans API events out to subscribers without ever blocking the
// publisher: a subscriber that falls behind loses events.
type eventHub struct {
	mu   sync.Mutex
	subs map[chan api.Event]struct{}
}

func newEventHub() *eventHub { return &eventHub{subs: map[chan api.Event]struct{}{}} }

func (h *eventHub) subscribe(ctx context.Context) <-chan api.Event {
	ch := make(chan api.Event, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	})
	return ch
}

func (h *eventHub) publish(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func eventBlock(b api.Block) api.Event { return api.Event{Type: api.EventBlock, Block: &b} }

func eventJob(j api.Job) api.Event { return api.Event{Type: api.EventJob, Job: &j} }
