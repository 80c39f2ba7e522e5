package gateway

import (
	"context"
	"sync"
	"time"
)

// frame is what a subscription hands its connection: events to write, or
// the error that ended the subscription.
type frame struct {
	sub string
	evs []*event
	err error
}

// outbox is the bounded send queue of one connection. Subscriptions push
// frames; the connection's writer takes them. A push that finds no room
// for the slow-consumer timeout fails, so a client that stops reading
// costs at most the queue, never unbounded memory.
type outbox struct {
	ch   chan frame
	slow time.Duration

	// mu guards sent.
	mu   sync.Mutex
	sent map[string]string // subscription → cursor of the last event written
}

func newOutbox(size int, slow time.Duration) *outbox {
	return &outbox{ch: make(chan frame, size), slow: slow, sent: make(map[string]string)}
}

// push queues f, waiting up to the slow-consumer timeout for room.
func (o *outbox) push(ctx context.Context, f frame) error {
	select {
	case o.ch <- f:
		return nil
	default:
	}
	t := time.NewTimer(o.slow)
	defer t.Stop()
	select {
	case o.ch <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return &Error{
			Code:    CodeSlowConsumer,
			Message: "the client did not read for " + o.slow.String() + " with its send buffer full; resume from the cursor",
			Cursor:  o.cursor(f.sub),
		}
	}
}

// wrote records the cursor of the last event of evs written for sub.
func (o *outbox) wrote(sub string, evs []*event) {
	for i := len(evs) - 1; i >= 0; i-- {
		if c := evs[i].cursor; c != "" {
			o.setCursor(sub, c)
			return
		}
	}
}

func (o *outbox) setCursor(sub, c string) {
	o.mu.Lock()
	o.sent[sub] = c
	o.mu.Unlock()
}

// cursor returns the cursor sub resumes from: that of the last event
// written, or its starting position.
func (o *outbox) cursor(sub string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sent[sub]
}

func (o *outbox) forget(sub string) {
	o.mu.Lock()
	delete(o.sent, sub)
	o.mu.Unlock()
}
