package changelog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultReadBatch is the number of messages a reader pulls at a time when
// [ReadOptions.Batch] is zero.
const DefaultReadBatch = 256

// ErrStop may be returned by the callback of [Log.Read] or [Log.ReadRange]
// to end reading early without an error.
var ErrStop = errors.New("changelog: stop reading")

// Message is one message of the log.
type Message struct {
	Seq     uint64      // stream sequence
	Subject string      // pgtide.<source>.<schema>.<table>, see [Subject]
	Header  nats.Header // headers set by the publisher, including NATS ones
	Data    []byte      // payload
	Time    time.Time   // when the stream stored the message

	// Pending is the number of messages matching the reader's filters
	// that followed this one when it was delivered. It is zero for
	// messages returned by [Log.Last].
	Pending uint64
}

// ReadOptions selects what [Log.Read] delivers.
type ReadOptions struct {
	// StartSeq is the first stream sequence to deliver; messages before
	// it are skipped, and a sequence older than the log starts at the
	// oldest kept message. Zero starts at the oldest kept message.
	StartSeq uint64

	// DeliverNew skips every message stored before Read starts. It
	// cannot be combined with StartSeq.
	DeliverNew bool

	// Filters are NATS subjects, possibly with wildcards (see
	// [TableFilter]); only messages matching one of them are delivered.
	// Empty delivers every message.
	Filters []string

	// HeadersOnly delivers messages without their data, for scans that
	// need only headers.
	HeadersOnly bool

	// Batch is the number of messages pulled from the server at a time,
	// which bounds what the reader buffers. Zero means DefaultReadBatch.
	Batch int
}

// Read calls fn for each message of the log of source in stream order,
// starting as opts says, and waits for new messages once it has caught up.
// It runs until ctx ends, when it returns ctx.Err(), or until fn returns an
// error, which it returns unless it is [ErrStop]. Messages are pulled in
// batches of opts.Batch through an ephemeral ordered consumer, which
// recreates itself if the server loses it, so no message is skipped or
// repeated. A missing stream yields an error matching
// [jetstream.ErrStreamNotFound].
func (l *Log) Read(
	ctx context.Context, source string, opts ReadOptions, fn func(*Message) error,
) error {
	return l.read(ctx, source, opts, fn, 0, false)
}

// ReadRange calls fn for each message of the log of source with a stream
// sequence in [startSeq, endSeq] and returns once the range is done. An
// endSeq of zero means the last sequence of the log when ReadRange starts;
// a startSeq of zero means the oldest kept message. Messages no longer kept
// are skipped. ReadRange returns early without error when fn returns
// [ErrStop], and returns any other error of fn or ctx.Err() unchanged.
func (l *Log) ReadRange(
	ctx context.Context, source string, startSeq, endSeq uint64, fn func(*Message) error,
) error {
	if endSeq == 0 {
		st, err := l.Info(ctx, source)
		if err != nil {
			return err
		}
		if st.Msgs == 0 {
			return nil
		}
		endSeq = st.LastSeq
	}
	if startSeq > endSeq {
		return nil
	}
	return l.read(ctx, source, ReadOptions{StartSeq: startSeq}, fn, endSeq, true)
}

// read implements Read and ReadRange. When bounded, it stops after endSeq
// or once it has delivered everything the log holds.
func (l *Log) read(
	ctx context.Context, source string, opts ReadOptions, fn func(*Message) error,
	endSeq uint64, bounded bool,
) error {
	cfg, batch, err := consumerConfig(opts)
	if err != nil {
		return fmt.Errorf("changelog: read source %s: %w", source, err)
	}

	s, err := l.stream(ctx, source)
	if err != nil {
		return err
	}

	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("changelog: read stream %s: create consumer: %w", StreamName(source), err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(batch))
	if err != nil {
		return fmt.Errorf("changelog: read stream %s: %w", StreamName(source), err)
	}
	defer func() {
		it.Stop()
		l.deleteConsumer(ctx, s, cons)
	}()

	if bounded {
		// Without this check an empty range would wait for new messages.
		if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
			return nil
		}
	}

	for {
		jm, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("changelog: read stream %s: %w", StreamName(source), err)
		}

		m, err := toMessage(jm)
		if err != nil {
			return fmt.Errorf("changelog: read stream %s: %w", StreamName(source), err)
		}
		if bounded && m.Seq > endSeq {
			return nil
		}

		if err := fn(m); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}

		if bounded && (m.Seq >= endSeq || m.Pending == 0) {
			return nil
		}
	}
}

// deleteTimeout bounds the clean-up of a reader's consumer.
const deleteTimeout = 2 * time.Second

// deleteConsumer removes the server side of an ordered consumer once its
// reader is done. Stopping the iterator leaves it in place until it has
// been idle for its inactivity threshold (minutes), which would let
// short-lived readers pile up. Failure is harmless: the threshold still
// applies.
func (l *Log) deleteConsumer(ctx context.Context, s jetstream.Stream, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}

	// ctx may be what ended the read; the clean-up still needs a moment.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	err := s.DeleteConsumer(dctx, info.Name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.logger.Debug("delete reader consumer",
			"stream", info.Stream,
			"consumer", info.Name,
			"err", err,
		)
	}
}

// consumerConfig translates opts into an ordered consumer configuration
// and the pull batch size.
func consumerConfig(opts ReadOptions) (jetstream.OrderedConsumerConfig, int, error) {
	var cfg jetstream.OrderedConsumerConfig
	if opts.Batch < 0 {
		return cfg, 0, fmt.Errorf("batch %d is negative", opts.Batch)
	}
	batch := opts.Batch
	if batch == 0 {
		batch = DefaultReadBatch
	}

	switch {
	case opts.DeliverNew && opts.StartSeq > 0:
		return cfg, 0, fmt.Errorf("start sequence %d and deliver-new are exclusive", opts.StartSeq)
	case opts.DeliverNew:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case opts.StartSeq > 0:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = opts.StartSeq
	default:
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	}

	for _, f := range opts.Filters {
		if f == "" {
			return cfg, 0, errors.New("empty filter subject")
		}
	}
	cfg.FilterSubjects = opts.Filters
	cfg.HeadersOnly = opts.HeadersOnly
	return cfg, batch, nil
}

// toMessage converts a delivered JetStream message.
func toMessage(jm jetstream.Msg) (*Message, error) {
	md, err := jm.Metadata()
	if err != nil {
		return nil, fmt.Errorf("message metadata: %w", err)
	}
	return &Message{
		Seq:     md.Sequence.Stream,
		Subject: jm.Subject(),
		Header:  jm.Headers(),
		Data:    jm.Data(),
		Time:    md.Timestamp,
		Pending: md.NumPending,
	}, nil
}
