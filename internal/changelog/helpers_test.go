package changelog

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
)

// openTestLog starts an embedded log in dir, closed when the test ends.
func openTestLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	if cfg.URL == "" && cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Log.Close: %v", err)
		}
	})
	return l
}

// ensureTestStream creates the stream of source with no retention limits.
func ensureTestStream(t testing.TB, l *Log, source string) {
	t.Helper()
	if _, err := l.EnsureStream(t.Context(), source, Retention{}); err != nil {
		t.Fatalf("EnsureStream(%s): %v", source, err)
	}
}

// testMsg is a message to publish in tests.
type testMsg struct {
	subject string
	data    string
}

// publishAll publishes msgs through a new publisher with tags 1..n, waits
// for all acks and returns the tags in the order Acked delivered them.
func publishAll(
	t testing.TB, l *Log, source string, maxPending int, msgs []testMsg,
) (*Publisher, []uint64) {
	t.Helper()
	ctx := t.Context()

	p, err := l.NewPublisher(ctx, source, maxPending)
	if err != nil {
		t.Fatalf("NewPublisher(%s): %v", source, err)
	}
	t.Cleanup(func() { p.Close() })

	got := make(chan []uint64, 1)
	go func() {
		var tags []uint64
		for tag := range p.Acked() {
			tags = append(tags, tag)
			if len(tags) == len(msgs) {
				break
			}
		}
		got <- tags
	}()

	for i, m := range msgs {
		hdr := nats.Header{"Pgtide-Test": []string{fmt.Sprint(i + 1)}}
		if err := p.Publish(ctx, m.subject, hdr, []byte(m.data), uint64(i+1)); err != nil {
			t.Fatalf("Publish #%d to %s: %v", i+1, m.subject, err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if len(msgs) == 0 {
		return p, nil
	}
	return p, <-got
}

// readAll reads the range [start, end] of source.
func readAll(t testing.TB, l *Log, source string, start, end uint64) []*Message {
	t.Helper()
	var out []*Message
	err := l.ReadRange(t.Context(), source, start, end, func(m *Message) error {
		out = append(out, m)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadRange(%s, %d, %d): %v", source, start, end, err)
	}
	return out
}

// seqs returns the sequences of msgs.
func seqs(msgs []*Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}
