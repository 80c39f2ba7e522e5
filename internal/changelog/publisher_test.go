package changelog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPublisherOrderedAcks(t *testing.T) {
	l := openTestLog(t, Config{})
	ensureTestStream(t, l, "src")

	const n = 10000
	msgs := make([]testMsg, n)
	for i := range msgs {
		msgs[i] = testMsg{Subject("src", "public", fmt.Sprintf("t%d", i%7)), fmt.Sprintf("payload %d", i+1)}
	}
	p, tags := publishAll(t, l, "src", 512, msgs)

	if len(tags) != n {
		t.Fatalf("Acked delivered %d tags, want %d", len(tags), n)
	}
	for i, tag := range tags {
		if tag != uint64(i+1) {
			t.Fatalf("Acked tag #%d = %d, want %d", i, tag, i+1)
		}
	}
	if got := p.LastSeq(); got != n {
		t.Errorf("LastSeq() = %d, want %d", got, n)
	}
	if err := p.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}

	st, err := l.Info(t.Context(), "src")
	if err != nil || st.Msgs != n || st.LastSeq != n {
		t.Errorf("Info = %+v, %v; want %d messages ending at %d", st, err, n, n)
	}

	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, ok := <-p.Acked(); ok {
		t.Errorf("Acked not closed after Close")
	}
	if err := p.Publish(t.Context(), msgs[0].subject, nil, nil, 1); !errors.Is(err, ErrPublisherClosed) {
		t.Errorf("Publish after Close = %v, want ErrPublisherClosed", err)
	}
}

func TestPublisherGapProtection(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()
	ensureTestStream(t, l, "src")
	subj := Subject("src", "public", "t")

	// Both publishers start from the empty stream.
	p2, err := l.NewPublisher(ctx, "src", 16)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer p2.Close()
	publishAll(t, l, "src", 16, []testMsg{{subj, "from p1"}})

	// p2 expects the stream to end at 0, so its first message is refused.
	if err := p2.Publish(ctx, subj, nil, []byte("from p2"), 1); err != nil {
		t.Fatalf("first Publish on p2 returned %v before any ack", err)
	}
	err = p2.Flush(ctx)
	if err == nil {
		t.Fatalf("Flush on p2 = nil, want wrong last sequence error")
	}
	if !IsWrongLastSequence(err) {
		t.Errorf("Flush on p2 error %v: IsWrongLastSequence = false", err)
	}
	if p2.Err() == nil || p2.Err().Error() != err.Error() {
		t.Errorf("Err() = %v, want %v", p2.Err(), err)
	}
	if tag, ok := <-p2.Acked(); ok {
		t.Errorf("p2 Acked delivered tag %d, want the channel closed", tag)
	}
	if err := p2.Publish(ctx, subj, nil, []byte("again"), 2); err == nil {
		t.Errorf("Publish on broken publisher succeeded")
	}

	got := readAll(t, l, "src", 0, 0)
	if len(got) != 1 || string(got[0].Data) != "from p1" {
		t.Fatalf("stream holds %d messages (%v), want only p1's", len(got), seqs(got))
	}

	// A publisher created now continues the stream.
	p3, _ := publishAll(t, l, "src", 16, []testMsg{{subj, "from p3"}})
	if got := p3.LastSeq(); got != 2 {
		t.Errorf("p3 LastSeq() = %d, want 2", got)
	}
}

func TestPublisherFailureStopsLaterMessages(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()
	ensureTestStream(t, l, "src")
	subj := Subject("src", "public", "t")

	p, err := l.NewPublisher(ctx, "src", 16)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer p.Close()

	// The server refuses message 3 (it expects another stream); 4 and 5
	// are already sent by then and must be refused too, leaving no gap.
	for i := 1; i <= 5; i++ {
		var hdr map[string][]string
		if i == 3 {
			hdr = map[string][]string{"Nats-Expected-Stream": {"NOT_THIS_ONE"}}
		}
		err := p.Publish(ctx, subj, hdr, []byte(fmt.Sprint(i)), uint64(i))
		if err != nil && i <= 3 {
			t.Fatalf("Publish #%d: %v", i, err)
		}
		if err != nil {
			// The refusal of message 3 arrived already.
			if !strings.Contains(err.Error(), "tag 3") {
				t.Fatalf("Publish #%d = %v, want the failure of tag 3", i, err)
			}
			break
		}
	}
	if err := p.Flush(ctx); err == nil {
		t.Fatalf("Flush = nil, want the failure of message 3")
	}

	var tags []uint64
	for tag := range p.Acked() {
		tags = append(tags, tag)
	}
	if fmt.Sprint(tags) != "[1 2]" {
		t.Errorf("Acked delivered %v, want [1 2]", tags)
	}
	if got := p.LastSeq(); got != 2 {
		t.Errorf("LastSeq() = %d, want 2", got)
	}
	if got := readAll(t, l, "src", 0, 0); fmt.Sprint(seqs(got)) != "[1 2]" {
		t.Fatalf("stream holds %v, want [1 2]", seqs(got))
	}
}

func TestPublisherSendFailureBreaks(t *testing.T) {
	l := openTestLog(t, Config{MaxPayload: 1024})
	ctx := t.Context()
	ensureTestStream(t, l, "src")
	subj := Subject("src", "public", "t")

	p, err := l.NewPublisher(ctx, "src", 8)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer p.Close()

	if err := p.Publish(ctx, subj, nil, []byte("ok"), 1); err != nil {
		t.Fatalf("Publish small: %v", err)
	}
	big := make([]byte, 4096)
	if err := p.Publish(ctx, subj, nil, big, 2); err == nil {
		t.Fatalf("Publish of %d bytes over a 1024-byte limit succeeded", len(big))
	}
	if p.Err() == nil {
		t.Fatalf("Err() = nil after a failed send")
	}
	if err := p.Publish(ctx, subj, nil, []byte("ok"), 3); err == nil {
		t.Fatalf("Publish after failure succeeded, want the first failure")
	}
	if err := p.Flush(ctx); err == nil {
		t.Fatalf("Flush after failure = nil")
	}

	// The message sent before the failure is stored and reported.
	var tags []uint64
	for tag := range p.Acked() {
		tags = append(tags, tag)
	}
	if fmt.Sprint(tags) != "[1]" {
		t.Errorf("Acked delivered %v, want [1]", tags)
	}
	if got := p.LastSeq(); got != 1 {
		t.Errorf("LastSeq() = %d, want 1", got)
	}
	if got := readAll(t, l, "src", 0, 0); len(got) != 1 {
		t.Fatalf("stream holds %d messages, want 1", len(got))
	}
}

func TestPublisherBackPressure(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()
	ensureTestStream(t, l, "src")
	subj := Subject("src", "public", "t")

	p, err := l.NewPublisher(ctx, "src", 2)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer p.Close()

	// Nobody receives from Acked, so two messages fill the window.
	for i := 1; i <= 2; i++ {
		if err := p.Publish(ctx, subj, nil, []byte("x"), uint64(i)); err != nil {
			t.Fatalf("Publish #%d: %v", i, err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Publish(canceled, subj, nil, []byte("x"), 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a full window and canceled ctx = %v, want context.Canceled", err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err() after canceled Publish = %v, want nil", err)
	}

	// Receiving a tag frees a slot.
	if tag := <-p.Acked(); tag != 1 {
		t.Fatalf("first tag = %d, want 1", tag)
	}
	if err := p.Publish(ctx, subj, nil, []byte("x"), 3); err != nil {
		t.Fatalf("Publish after a tag was received: %v", err)
	}
	for want := uint64(2); want <= 3; want++ {
		if tag := <-p.Acked(); tag != want {
			t.Fatalf("tag = %d, want %d", tag, want)
		}
	}
	if got := p.LastSeq(); got != 3 {
		t.Errorf("LastSeq() = %d, want 3", got)
	}
}

func TestPublisherErrors(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()

	if _, err := l.NewPublisher(ctx, "missing", 0); err == nil {
		t.Errorf("NewPublisher for a missing stream succeeded")
	}
	ensureTestStream(t, l, "src")
	if _, err := l.NewPublisher(ctx, "src", -1); err == nil {
		t.Errorf("NewPublisher with maxPending -1 succeeded")
	}

	p, err := l.NewPublisher(ctx, "src", 0)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	defer p.Close()
	err = p.Publish(ctx, Subject("other", "public", "t"), nil, nil, 1)
	if err == nil || !strings.Contains(err.Error(), "does not start with") {
		t.Errorf("Publish to another source's subject = %v, want a subject error", err)
	}
	if p.Err() != nil {
		t.Errorf("a rejected subject broke the publisher: %v", p.Err())
	}

	// Header maps passed in are not modified.
	hdr := map[string][]string{"A": {"1"}}
	go func() {
		for range p.Acked() {
		}
	}()
	if err := p.Publish(ctx, Subject("src", "public", "t"), hdr, []byte("x"), 1); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if len(hdr) != 1 {
		t.Errorf("Publish modified the caller's header: %v", hdr)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}
