package gateway

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// entry is one log message, decoded once and shared by every subscriber
// that reads it.
type entry struct {
	seq     uint64
	subject string
	data    []byte
	time    time.Time

	decodeOnce sync.Once
	batch      *change.Batch
	decodeErr  error

	eventsOnce sync.Once
	events     []*event // full-projection events, one per record

	envsOnce sync.Once
	envs     []map[string]any // predicate variables, one per record
}

func newEntry(m *changelog.Message) *entry {
	return &entry{seq: m.Seq, subject: m.Subject, data: m.Data, time: m.Time}
}

func (e *entry) decode() (*change.Batch, error) {
	e.decodeOnce.Do(func() {
		e.batch, e.decodeErr = change.DecodeBatch(e.data)
	})
	return e.batch, e.decodeErr
}

// fullEvents returns the events of every record with all columns, built
// once per message: subscribers that see every column share them.
func (e *entry) fullEvents(b *change.Batch) []*event {
	e.eventsOnce.Do(func() {
		e.events = make([]*event, b.Len())
		for i := range e.events {
			r := b.Record(i)
			e.events[i] = newEvent(&r, recordCursor(e.seq, i, b.Len(), &r).Encode(b.Source), nil)
		}
	})
	return e.events
}

// fullEnvs returns the predicate variables of every record with all
// columns, built once per message.
func (e *entry) fullEnvs(b *change.Batch) []map[string]any {
	e.envsOnce.Do(func() {
		e.envs = make([]map[string]any, b.Len())
		for i := range e.envs {
			r := b.Record(i)
			e.envs[i] = predicateEnv(&r, nil)
		}
	})
	return e.envs
}

// recordCursor returns the cursor just after record i of a message of n
// records.
func recordCursor(seq uint64, i, n int, r *change.Record) Cursor {
	return Cursor{Seq: seq, Index: uint32(i), End: i == n-1, TxEnd: r.Last, ID: r.ID}
}

// hub follows the head of one source's log and keeps its recent messages,
// so that every subscriber at the head shares one log reader and one
// decoding. Subscribers behind the cache read the log themselves.
type hub struct {
	log      *changelog.Log
	source   string
	maxMsgs  int
	maxBytes int
	onError  func(error)

	// mu guards the fields below.
	mu      sync.Mutex
	entries []*entry // consecutive in stream order
	floor   uint64   // the cache answers for sequences >= floor
	next    uint64   // the sequence the reader expects next
	bytes   int
	wake    chan struct{} // closed when entries grow
	known   map[string]bool
}

func newHub(l *changelog.Log, source string, start uint64, maxMsgs, maxBytes int, onError func(error)) *hub {
	return &hub{
		log: l, source: source, maxMsgs: maxMsgs, maxBytes: maxBytes, onError: onError,
		floor: start, next: start, wake: make(chan struct{}), known: make(map[string]bool),
	}
}

// run reads the log from the hub's start until ctx ends, retrying with
// jittered backoff when reading fails.
func (h *hub) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		h.mu.Lock()
		start := h.next
		h.mu.Unlock()

		err := h.log.Read(ctx, h.source, changelog.ReadOptions{StartSeq: start}, func(m *changelog.Message) error {
			h.append(newEntry(m))
			backoff = 100 * time.Millisecond
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil && h.onError != nil {
			h.onError(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(rand.N(backoff) + backoff/2):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (h *hub) append(e *entry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries = append(h.entries, e)
	h.bytes += len(e.data)
	h.next = e.seq + 1
	h.known[e.subject] = true
	for len(h.entries) > 1 && (len(h.entries) > h.maxMsgs || h.bytes > h.maxBytes) {
		old := h.entries[0]
		h.entries[0] = nil
		h.entries = h.entries[1:]
		h.bytes -= len(old.data)
		h.floor = old.seq + 1
	}
	close(h.wake)
	h.wake = make(chan struct{})
}

// get returns the first cached message at or after seq. Without one it
// returns a channel closed when the cache grows, or behind when seq is
// older than the cache.
func (h *hub) get(seq uint64) (e *entry, wait <-chan struct{}, behind bool, floor uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq < h.floor {
		return nil, nil, true, h.floor
	}
	i := sort.Search(len(h.entries), func(i int) bool { return h.entries[i].seq >= seq })
	if i < len(h.entries) {
		return h.entries[i], nil, false, h.floor
	}
	return nil, h.wake, false, h.floor
}

// knows reports whether the hub saw a message on subject.
func (h *hub) knows(subject string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.known[subject]
}

// errStopRead ends a catch-up read early.
var errStopRead = errors.New("gateway: stop read")
