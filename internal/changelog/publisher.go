package changelog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultMaxPending is the publish window of [Log.NewPublisher] when its
// maxPending argument is zero.
const DefaultMaxPending = 4096

// ackTimeout bounds the wait for one acknowledgement. An ack can be lost
// without the connection failing (a slow-consumer drop, a cluster leader
// change); the publisher then breaks instead of waiting forever.
const ackTimeout = 30 * time.Second

// ErrPublisherClosed is returned by [Publisher.Publish] and
// [Publisher.Flush] after [Publisher.Close].
var ErrPublisherClosed = errors.New("changelog: publisher closed")

// Publisher appends messages to the log of one source, in order and
// without gaps. Each message carries the stream sequence the publisher
// expects the stream to end at, so the server stores it only directly
// after the previous one. The first failure breaks the publisher: the
// failed message and every message sent after it are refused by the
// stream (see the caveat below), later calls to Publish return
// [Publisher.Err], and the caller creates a new Publisher to continue from
// what the stream really holds. Messages sent before the failed one may
// still be stored and reported on [Publisher.Acked].
//
// Use only one Publisher per source at a time. The expected sequence stops
// a second writer's first message, but once a broken publisher's later
// messages happen to expect the sequence the other writer reached, the
// stream stores them (they are never reported as acknowledged). Exclusive
// ownership of the source, such as its replication slot, must ensure a
// single writer.
//
// Publishes are asynchronous: [Publisher.Publish] returns once the message
// is sent, and [Publisher.Acked] reports the caller's tags once the stream
// has stored them. At most maxPending messages are in flight, counting
// acknowledged ones whose tags have not been received from Acked yet, so
// the caller must keep receiving from Acked.
//
// A Publisher is safe for concurrent use, though concurrent Publish calls
// are stored in the order they acquire the publisher.
type Publisher struct {
	js     jetstream.JetStream // private, so pending acks are this publisher's only
	stream string
	prefix string // subject prefix with the trailing dot
	logger *slog.Logger

	slots  chan struct{} // a token per in-flight publish, until its tag is delivered or dropped
	queue  chan *pending // sent publishes in publish order; never holds more than cap(slots)
	acked  chan uint64   // tags of stored messages, in order; closed by run
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when run returns
	broken chan struct{} // closed by the first failure

	closeOnce sync.Once

	// mu serializes Publish, so that expected sequences follow the order
	// in which messages are sent.
	mu      sync.Mutex
	nextSeq uint64 // guarded by mu; sequence of the last message sent

	lastSeq atomic.Uint64 // sequence of the last acknowledged message

	// errMu guards the failure. Lock order: mu, errMu.
	errMu   sync.Mutex
	err     error  // guarded by errMu; failure of the lowest sequence
	failSeq uint64 // guarded by errMu; the sequence err belongs to

	// progMu guards the counters Flush waits on. Lock order: mu, progMu;
	// never held together with errMu.
	progMu   sync.Mutex
	sent     uint64        // publishes handed to run
	resolved uint64        // publishes run has acknowledged or failed
	progress chan struct{} // closed and cleared when resolved grows; nil when nobody waits
}

// pending is a sent publish waiting for its acknowledgement.
type pending struct {
	tag uint64
	seq uint64 // the sequence the stream must assign
	ok  <-chan *jetstream.PubAck
	err <-chan error
}

// NewPublisher returns the publisher of the log of source, which must
// exist (see [Log.EnsureStream]). It continues after the stream's current
// last sequence. maxPending bounds the messages in flight; zero means
// DefaultMaxPending. Close the Publisher before its Log.
func (l *Log) NewPublisher(ctx context.Context, source string, maxPending int) (*Publisher, error) {
	if maxPending < 0 {
		return nil, fmt.Errorf("changelog: publisher for source %s: max pending %d is negative",
			source, maxPending)
	}
	if maxPending == 0 {
		maxPending = DefaultMaxPending
	}

	s, err := l.stream(ctx, source)
	if err != nil {
		return nil, err
	}
	last := s.CachedInfo().State.LastSeq

	js, err := jetstream.New(l.nc,
		jetstream.WithPublishAsyncMaxPending(maxPending),
		jetstream.WithPublishAsyncTimeout(ackTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("changelog: publisher for source %s: %w", source, err)
	}

	p := &Publisher{
		js:      js,
		stream:  StreamName(source),
		prefix:  SubjectPrefix(source) + ".",
		logger:  l.logger.With("stream", StreamName(source)),
		slots:   make(chan struct{}, maxPending),
		queue:   make(chan *pending, maxPending),
		acked:   make(chan uint64),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		broken:  make(chan struct{}),
		nextSeq: last,
	}
	p.lastSeq.Store(last)
	go p.run(maxPending)

	p.logger.Debug("publisher started", "last_seq", last, "max_pending", maxPending)
	return p, nil
}

// Publish sends a message with the given subject, headers and payload, and
// returns once it is sent, before the stream acknowledges it. tag is an
// opaque caller value that [Publisher.Acked] returns once the message is
// stored. The subject must belong to the publisher's source (see
// [Subject]). Publish does not keep hdr or data after it returns.
//
// Publish blocks while maxPending messages are in flight and returns
// ctx.Err() if ctx ends first. It returns [Publisher.Err] once the
// publisher is broken, and [ErrPublisherClosed] after Close. A failure to
// send breaks the publisher.
func (p *Publisher) Publish(
	ctx context.Context, subject string, hdr nats.Header, data []byte, tag uint64,
) error {
	if !strings.HasPrefix(subject, p.prefix) {
		return fmt.Errorf("changelog: publish to %s: subject %q does not start with %q",
			p.stream, subject, p.prefix)
	}

	p.mu.Lock()
	defer p.mu.Unlock()

	select {
	case <-p.stop:
		return ErrPublisherClosed
	case <-p.broken:
		return p.Err()
	default:
	}

	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.stop:
		return ErrPublisherClosed
	case <-p.broken:
		return p.Err()
	}

	// The expected-sequence option adds a header; copy so the caller's
	// map is never written.
	h := make(nats.Header, len(hdr)+1)
	maps.Copy(h, hdr)
	msg := &nats.Msg{Subject: subject, Header: h, Data: data}

	// No retries: a retried message could land after its successors,
	// which the expected sequence would refuse anyway.
	f, err := p.js.PublishMsgAsync(msg,
		jetstream.WithExpectLastSequence(p.nextSeq),
		jetstream.WithRetryAttempts(0),
	)
	if err != nil {
		<-p.slots
		err = fmt.Errorf("changelog: publish to %s, tag %d, sequence %d: %w",
			p.stream, tag, p.nextSeq+1, err)
		p.fail(err, p.nextSeq+1)
		return err
	}

	p.nextSeq++
	p.queue <- &pending{tag: tag, seq: p.nextSeq, ok: f.Ok(), err: f.Err()}

	p.progMu.Lock()
	p.sent++
	p.progMu.Unlock()
	return nil
}

// Acked returns the channel that receives the tags of stored messages,
// one per successful [Publisher.Publish], in publish order. The channel is
// closed after Close, or once the publisher is broken and the tags of the
// messages stored before the failure have been received.
func (p *Publisher) Acked() <-chan uint64 { return p.acked }

// LastSeq returns the stream sequence of the last acknowledged message,
// or the stream's last sequence when the publisher was created if none
// has been acknowledged yet.
func (p *Publisher) LastSeq() uint64 { return p.lastSeq.Load() }

// Err returns the failure that broke the publisher, or nil.
func (p *Publisher) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// Flush waits until every message sent so far is acknowledged or has
// failed, and returns the first failure, if any. It returns ctx.Err() if
// ctx ends first and [ErrPublisherClosed] if the publisher is closed
// meanwhile. Flush does not wait for tags to be received from Acked.
func (p *Publisher) Flush(ctx context.Context) error {
	p.progMu.Lock()
	target := p.sent
	for p.resolved < target {
		if p.progress == nil {
			p.progress = make(chan struct{})
		}
		progress := p.progress
		p.progMu.Unlock()

		select {
		case <-progress:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			if err := p.Err(); err != nil {
				return err
			}
			return ErrPublisherClosed
		}
		p.progMu.Lock()
	}
	p.progMu.Unlock()
	return p.Err()
}

// Close stops the publisher and closes [Publisher.Acked]. Messages still
// in flight are abandoned: the stream may or may not store them, and no
// tag is reported for them. Call [Publisher.Flush] first to wait for them.
// Close waits for the publisher's goroutine and is idempotent.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		close(p.stop)
		<-p.done

		// Fails what is still pending and drops the reply subscription.
		p.js.CleanupPublisher()
		p.logger.Debug("publisher closed", "last_seq", p.LastSeq())
	})
	return nil
}

// fail records a failure of the message at sequence seq and breaks the
// publisher. Err keeps the failure of the lowest sequence: a send failure
// in Publish can precede the refusal of an earlier message in time.
func (p *Publisher) fail(err error, seq uint64) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err != nil && seq >= p.failSeq {
		return
	}
	first := p.err == nil
	p.err, p.failSeq = err, seq
	if !first {
		return
	}
	close(p.broken)

	if IsWrongLastSequence(err) {
		p.logger.Error("publish refused, stream has another writer or lost a message",
			"seq", seq,
			"err", err,
		)
		return
	}
	p.logger.Error("publish failed", "seq", seq, "err", err)
}

// failedAt reports whether the publisher is broken at or before seq, so
// that a message at seq does not count as stored even if acknowledged.
func (p *Publisher) failedAt(seq uint64) bool {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err != nil && p.failSeq <= seq
}

// run waits for acknowledgements in publish order and hands tags to
// Acked. It owns the tags ring: tags of acknowledged messages that the
// caller has not received yet, each still holding its slot, so the ring
// never holds more than maxPending tags.
func (p *Publisher) run(maxPending int) {
	defer close(p.done)

	tags := make([]uint64, maxPending) // ring buffer
	head, n := 0, 0
	ackedOpen := true
	var cur *pending
	doneSeq := p.lastSeq.Load() // sequence of the last resolved message

	for {
		// Once broken, Acked closes after the tags of every message
		// before the failed one.
		if ackedOpen && n == 0 && p.failedAt(doneSeq+1) {
			close(p.acked)
			ackedOpen = false
		}

		var (
			next  <-chan *pending
			okCh  <-chan *jetstream.PubAck
			errCh <-chan error
			out   chan<- uint64
			tag   uint64
			brk   <-chan struct{}
		)
		if cur == nil {
			next = p.queue
		} else {
			okCh, errCh = cur.ok, cur.err
		}
		if n > 0 {
			out, tag = p.acked, tags[head]
		} else if ackedOpen && !p.isBroken() {
			// A failed send in Publish breaks the publisher without
			// waking this loop otherwise; Acked may have to close then.
			brk = p.broken
		}

		select {
		case cur = <-next:

		case ack := <-okCh:
			err := p.check(cur, ack)
			if err != nil {
				p.fail(err, cur.seq)
			}
			if err == nil && !p.failedAt(cur.seq) {
				p.lastSeq.Store(ack.Sequence)
				tags[(head+n)%maxPending] = cur.tag
				n++
			} else {
				<-p.slots
			}
			doneSeq = cur.seq
			cur = nil
			p.markResolved()

		case err := <-errCh:
			p.fail(fmt.Errorf("changelog: publish to %s, tag %d, sequence %d: %w",
				p.stream, cur.tag, cur.seq, err), cur.seq)
			<-p.slots
			doneSeq = cur.seq
			cur = nil
			p.markResolved()

		case out <- tag:
			head = (head + 1) % maxPending
			n--
			<-p.slots

		case <-brk:
			// Acked may close at the top of the loop.

		case <-p.stop:
			if ackedOpen {
				close(p.acked)
			}
			return
		}
	}
}

// check verifies that ack stores pend where the publisher expects.
func (p *Publisher) check(pend *pending, ack *jetstream.PubAck) error {
	switch {
	case ack.Stream != p.stream:
		return fmt.Errorf("changelog: publish tag %d: stored in stream %s, want %s",
			pend.tag, ack.Stream, p.stream)
	case ack.Duplicate:
		return fmt.Errorf("changelog: publish to %s, tag %d: duplicate of sequence %d "+
			"(Nats-Msg-Id reused), want a new message at %d",
			p.stream, pend.tag, ack.Sequence, pend.seq)
	case ack.Sequence != pend.seq:
		return fmt.Errorf("changelog: publish to %s, tag %d: stored at sequence %d, want %d",
			p.stream, pend.tag, ack.Sequence, pend.seq)
	}
	return nil
}

func (p *Publisher) isBroken() bool {
	select {
	case <-p.broken:
		return true
	default:
		return false
	}
}

// markResolved counts one more resolved publish and wakes Flush.
func (p *Publisher) markResolved() {
	p.progMu.Lock()
	defer p.progMu.Unlock()
	p.resolved++
	if p.progress != nil {
		close(p.progress)
		p.progress = nil
	}
}
