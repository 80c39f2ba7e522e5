package changelog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// publishTables publishes n messages round-robin over tables of schema
// public and returns them.
func publishTables(t *testing.T, l *Log, source string, n int, tables ...string) []testMsg {
	t.Helper()
	msgs := make([]testMsg, n)
	for i := range msgs {
		msgs[i] = testMsg{Subject(source, "public", tables[i%len(tables)]), fmt.Sprint(i + 1)}
	}
	publishAll(t, l, source, 0, msgs)
	return msgs
}

func TestReadFilter(t *testing.T) {
	l := openTestLog(t, Config{})
	ensureTestStream(t, l, "src")
	msgs := publishTables(t, l, "src", 30, "orders", "order.items", "users")

	// Also a table in another schema that a public.* filter must skip.
	publishAll(t, l, "src", 0, []testMsg{{Subject("src", "audit", "orders"), "audit"}})

	tests := []struct {
		pattern string
		want    func(subject string) bool
	}{
		{"public.orders", func(s string) bool { return s == Subject("src", "public", "orders") }},
		{`public."order.items"`, func(s string) bool {
			return s == Subject("src", "public", "order.items")
		}},
		{"public.*", func(s string) bool { return strings.HasPrefix(s, "pgtide.src.public.") }},
		{"*.orders", func(s string) bool { return strings.HasSuffix(s, ".orders") }},
	}
	for _, tt := range tests {
		t.Run(strings.NewReplacer(".", "_", "*", "any", `"`, "").Replace(tt.pattern), func(t *testing.T) {
			filter, err := TableFilter("src", tt.pattern)
			if err != nil {
				t.Fatalf("TableFilter(%q): %v", tt.pattern, err)
			}

			var wantSeqs []uint64
			all := append(slices.Clone(msgs), testMsg{Subject("src", "audit", "orders"), "audit"})
			for i, m := range all {
				if tt.want(m.subject) {
					wantSeqs = append(wantSeqs, uint64(i+1))
				}
			}

			var got []uint64
			opts := ReadOptions{Filters: []string{filter}, Batch: 4}
			err = l.Read(t.Context(), "src", opts, func(m *Message) error {
				if !tt.want(m.Subject) {
					return fmt.Errorf("message %d on %s does not match %s", m.Seq, m.Subject, filter)
				}
				if m.Time.IsZero() || m.Header.Get("Pgtide-Test") == "" {
					return fmt.Errorf("message %d lacks time or header: %+v", m.Seq, m)
				}
				got = append(got, m.Seq)
				if m.Pending == 0 {
					return ErrStop
				}
				return nil
			})
			if err != nil {
				t.Fatalf("Read(filter %s): %v", filter, err)
			}
			if !slices.Equal(got, wantSeqs) {
				t.Fatalf("Read(filter %s) = %v, want %v", filter, got, wantSeqs)
			}
		})
	}
}

func TestReadFollowsAndStops(t *testing.T) {
	l := openTestLog(t, Config{})
	ensureTestStream(t, l, "src")
	publishTables(t, l, "src", 3, "t")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	p, err := l.NewPublisher(ctx, "src", 0)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer p.Close()
	go func() {
		for range p.Acked() {
		}
	}()

	// Read from sequence 2, then publish a new message once caught up; the
	// reader must see it, and end with ctx.Err() when canceled.
	var got []string
	err = l.Read(ctx, "src", ReadOptions{StartSeq: 2}, func(m *Message) error {
		got = append(got, string(m.Data))
		switch {
		case m.Seq == 3:
			return p.Publish(ctx, Subject("src", "public", "t"), nil, []byte("live"), 1)
		case m.Seq == 4:
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v, want context.Canceled", err)
	}
	if want := []string{"2", "3", "live"}; !slices.Equal(got, want) {
		t.Fatalf("Read delivered %q, want %q", got, want)
	}
}

func TestReadDeliverNew(t *testing.T) {
	l := openTestLog(t, Config{})
	ensureTestStream(t, l, "src")
	publishTables(t, l, "src", 3, "t")

	errStopped := errors.New("stopped")
	done := make(chan error, 1)
	started := make(chan struct{})
	var got []uint64
	go func() {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		close(started)
		done <- l.Read(ctx, "src", ReadOptions{DeliverNew: true}, func(m *Message) error {
			got = append(got, m.Seq)
			return errStopped
		})
	}()
	<-started

	// Keep publishing until the reader, whose start races with these
	// publishes, sees a message; it must never see the old ones.
	p, err := l.NewPublisher(t.Context(), "src", 0)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer p.Close()
	go func() {
		for range p.Acked() {
		}
	}()
	for i := 0; ; i++ {
		err := p.Publish(t.Context(), Subject("src", "public", "t"), nil, []byte("new"), uint64(i))
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if err := p.Flush(t.Context()); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, errStopped) {
				t.Fatalf("Read = %v, want the callback's error", err)
			}
			if len(got) != 1 || got[0] <= 3 {
				t.Fatalf("DeliverNew read %v, want one message after sequence 3", got)
			}
			return
		default:
		}
	}
}

func TestReadRange(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()
	ensureTestStream(t, l, "src")

	if got := readAll(t, l, "src", 0, 0); len(got) != 0 {
		t.Fatalf("ReadRange on an empty log = %v, want nothing", seqs(got))
	}

	publishTables(t, l, "src", 10, "a", "b")

	tests := []struct {
		start, end uint64
		want       string
	}{
		{0, 0, "[1 2 3 4 5 6 7 8 9 10]"},
		{3, 5, "[3 4 5]"},
		{7, 0, "[7 8 9 10]"},
		{10, 10, "[10]"},
		{8, 50, "[8 9 10]"},
		{6, 4, "[]"},
		{11, 0, "[]"},
		{11, 20, "[]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(seqs(readAll(t, l, "src", tt.start, tt.end))); got != tt.want {
			t.Errorf("ReadRange(%d, %d) = %s, want %s", tt.start, tt.end, got, tt.want)
		}
	}

	// ErrStop ends early without error; other errors come back as is.
	var n int
	err := l.ReadRange(ctx, "src", 0, 0, func(*Message) error { n++; return ErrStop })
	if err != nil || n != 1 {
		t.Errorf("ReadRange stopped by ErrStop = %v after %d messages, want nil after 1", err, n)
	}
	boom := errors.New("boom")
	if err := l.ReadRange(ctx, "src", 0, 0, func(*Message) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("ReadRange with failing callback = %v, want boom", err)
	}

	// Finished readers leave no consumer behind.
	s, err := l.JetStream().Stream(ctx, StreamName("src"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if n := s.CachedInfo().State.Consumers; n != 0 {
		t.Errorf("stream has %d consumers after all reads ended, want 0", n)
	}
}

func TestReadErrors(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()
	ensureTestStream(t, l, "src")
	nop := func(*Message) error { return nil }

	tests := []struct {
		name    string
		source  string
		opts    ReadOptions
		wantErr string
	}{
		{"missing_stream", "missing", ReadOptions{}, "not found"},
		{"start_and_new", "src", ReadOptions{StartSeq: 2, DeliverNew: true}, "exclusive"},
		{"negative_batch", "src", ReadOptions{Batch: -1}, "negative"},
		{"empty_filter", "src", ReadOptions{Filters: []string{""}}, "empty filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Read(ctx, tt.source, tt.opts, nop)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Read(%s, %+v) = %v, want error containing %q",
					tt.source, tt.opts, err, tt.wantErr)
			}
		})
	}
}
