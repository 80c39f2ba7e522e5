package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// maxDebounced bounds the events a debouncing subscription holds; a full
// window is delivered early.
const maxDebounced = 4096

// reader turns the log into the events of one subscription. It is used by
// one goroutine.
type reader struct {
	srv *Server
	hub *hub
	p   *plan

	next   uint64 // the next sequence to read
	skip   Cursor // records up to skip.Index of message skip.Seq are done
	doSkip bool
	txOpen bool // something of the current transaction was delivered

	// emit receives the events of one message (or one debounce window).
	emit func(ctx context.Context, evs []*event) error
	// idle, when set, is called when the reader has caught up and its
	// debounce window is empty; an error ends run.
	idle func() error
	// eager delivers a debounce window as soon as the reader catches up
	// (a long poll with no timeout).
	eager bool

	deb      []*event
	debKeys  map[string]int
	debStart time.Time
}

// errStopReader ends reader.run without error.
var errStopReader = errors.New("gateway: stop reader")

// start positions the reader: from is "beginning", "now", "" (now) or a
// cursor. It returns the cursor of the starting position.
func (rd *reader) start(ctx context.Context, from string) (string, error) {
	st, err := rd.srv.log.Info(ctx, rd.p.source)
	if err != nil {
		return "", rd.srv.logError(rd.p.source, err)
	}
	switch from {
	case "", "now":
		rd.next = st.LastSeq + 1
		rd.txOpen = false
		return Cursor{Seq: st.LastSeq, End: true, TxEnd: true}.Encode(rd.p.source), nil
	case "beginning":
		rd.next = max(st.FirstSeq, 1)
		return Cursor{Seq: rd.next - 1, End: true, TxEnd: true}.Encode(rd.p.source), nil
	}

	c, err := ParseCursor(rd.p.source, from)
	if err != nil {
		return "", err
	}
	if c.Seq > st.LastSeq {
		return "", errorf(CodeInvalidCursor,
			"cursor is at message %d but the log of %q ends at %d: it comes from another log, or the log was reset",
			c.Seq, rd.p.source, st.LastSeq)
	}
	rd.next = c.next()
	if st.Msgs > 0 && rd.next < st.FirstSeq || st.Msgs == 0 && rd.next <= st.LastSeq {
		return "", &Error{
			Code: CodeCursorExpired,
			Message: fmt.Sprintf("the log of %q no longer holds message %d (it starts at %d): re-snapshot, then subscribe from now",
				rd.p.source, rd.next, st.FirstSeq),
		}
	}
	rd.txOpen = !c.TxEnd
	if !c.End {
		rd.skip, rd.doSkip = c, true
	}
	return from, nil
}

// run delivers events until ctx ends, emit or idle fails, or the log
// fails.
func (rd *reader) run(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, wait, behind, floor := rd.hub.get(rd.next)
		switch {
		case behind:
			if err := rd.catchUp(ctx, floor-1); err != nil {
				return err
			}
		case e != nil:
			if err := rd.message(ctx, e); err != nil {
				return err
			}
		default:
			if err := rd.wait(ctx, wait); err != nil {
				return err
			}
		}
	}
}

// wait blocks until the cache grows, flushing a due debounce window.
func (rd *reader) wait(ctx context.Context, wait <-chan struct{}) error {
	var timer <-chan time.Time
	if len(rd.deb) > 0 {
		d := time.Until(rd.debStart.Add(rd.p.debounce))
		if d <= 0 || rd.eager {
			return rd.flush(ctx)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	} else if rd.idle != nil {
		if err := rd.idle(); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wait:
		return nil
	case <-timer:
		return rd.flush(ctx)
	}
}

// catchUp reads messages [rd.next, end] from the log itself.
func (rd *reader) catchUp(ctx context.Context, end uint64) error {
	st, err := rd.srv.log.Info(ctx, rd.p.source)
	if err != nil {
		return rd.srv.logError(rd.p.source, err)
	}
	if st.Msgs > 0 && rd.next < st.FirstSeq {
		return &Error{
			Code:    CodeCursorExpired,
			Message: fmt.Sprintf("the log of %q dropped message %d before it was read: re-snapshot", rd.p.source, rd.next),
			Cursor:  rd.scanCursor(),
		}
	}
	err = rd.srv.log.ReadRange(ctx, rd.p.source, rd.next, end, func(m *changelog.Message) error {
		return rd.message(ctx, newEntry(m))
	})
	if err != nil {
		return err
	}
	rd.next = max(rd.next, end+1)
	return nil
}

// message delivers what the subscription selects of one log message.
func (rd *reader) message(ctx context.Context, e *entry) error {
	rd.next = e.seq + 1
	if !rd.matchSubject(e.subject) {
		return rd.maybeFlush(ctx)
	}
	b, err := e.decode()
	if err != nil {
		rd.srv.metrics.errors.WithLabelValues("decode").Inc()
		return errorf(CodeInternal, "log message %d of %q does not decode: %v", e.seq, rd.p.source, err)
	}

	first := 0
	if rd.doSkip && e.seq == rd.skip.Seq {
		rd.doSkip = false
		i := int(rd.skip.Index)
		if i >= b.Len() || rd.skip.ID != (change.ID{}) && b.Record(i).ID != rd.skip.ID {
			return errorf(CodeInvalidCursor, "cursor does not match the log of %q at message %d: it comes from another log", rd.p.source, e.seq)
		}
		first = i + 1
	} else if rd.doSkip && e.seq > rd.skip.Seq {
		rd.doSkip = false
	}

	var full []*event
	if rd.p.proj == nil {
		full = e.fullEvents(b)
	}
	var envs []map[string]any
	if len(rd.p.where) > 0 && rd.p.predProj == nil {
		envs = e.fullEnvs(b)
	}

	var evs []*event
	for i := first; i < b.Len(); i++ {
		r := b.Record(i)
		if rd.accept(&r, envs, i) {
			var ev *event
			if full != nil {
				ev = full[i]
			} else {
				ev = newEvent(&r, recordCursor(e.seq, i, b.Len(), &r).Encode(rd.p.source), rd.p.proj)
			}
			evs = append(evs, ev)
			rd.txOpen = true
		}
		if r.Last {
			if rd.p.tx && rd.txOpen {
				cur := recordCursor(e.seq, i, b.Len(), &r).Encode(rd.p.source)
				evs = append(evs, commitEvent(&r, cur))
			}
			rd.txOpen = false
		}
	}
	if len(evs) == 0 {
		return rd.maybeFlush(ctx)
	}
	if rd.p.debounce > 0 {
		rd.debounce(evs)
		return rd.maybeFlush(ctx)
	}
	return rd.emit(ctx, evs)
}

func (rd *reader) matchSubject(subject string) bool {
	if len(rd.p.filters) == 0 {
		return true
	}
	for _, f := range rd.p.filters {
		if subjectMatch(f, subject) {
			return true
		}
	}
	return false
}

// accept applies the operation filter and the predicates to record i.
func (rd *reader) accept(r *change.Record, envs []map[string]any, i int) bool {
	if rd.p.ops != nil && !rd.p.ops[r.Op] {
		return false
	}
	if len(rd.p.where) == 0 {
		return true
	}
	var env map[string]any
	if envs != nil {
		env = envs[i]
	} else {
		env = predicateEnv(r, rd.p.predProj)
	}
	for _, w := range rd.p.where {
		ok, err := w.match(env)
		if err != nil {
			rd.srv.metrics.errors.WithLabelValues("predicate").Inc()
		}
		if !ok {
			return false
		}
	}
	return true
}

// debounce adds evs to the window. An update replaces an earlier update
// of the same row still in the window; any other operation on the row
// ends the coalescing for it, so a row's changes keep their order.
func (rd *reader) debounce(evs []*event) {
	if len(rd.deb) == 0 {
		rd.debStart = time.Now()
		rd.debKeys = make(map[string]int)
	}
	for _, ev := range evs {
		if ev.key != "" {
			if ev.op == string(change.OpUpdate) {
				if j, ok := rd.debKeys[ev.key]; ok {
					rd.deb[j] = nil
				}
				rd.debKeys[ev.key] = len(rd.deb)
			} else {
				delete(rd.debKeys, ev.key)
			}
		}
		rd.deb = append(rd.deb, ev)
	}
}

// maybeFlush delivers the debounce window when it is due or full.
func (rd *reader) maybeFlush(ctx context.Context) error {
	if len(rd.deb) == 0 {
		return nil
	}
	if len(rd.deb) < maxDebounced && time.Since(rd.debStart) < rd.p.debounce {
		return nil
	}
	return rd.flush(ctx)
}

// flush delivers the debounce window.
func (rd *reader) flush(ctx context.Context) error {
	if len(rd.deb) == 0 {
		return nil
	}
	evs := make([]*event, 0, len(rd.deb))
	for _, ev := range rd.deb {
		if ev != nil {
			evs = append(evs, ev)
		}
	}
	rd.deb, rd.debKeys = rd.deb[:0], nil
	return rd.emit(ctx, evs)
}

// scanCursor returns the cursor of the position after the last message
// the reader examined. Call it only with an empty debounce window.
func (rd *reader) scanCursor() string {
	if rd.doSkip {
		return rd.skip.Encode(rd.p.source)
	}
	return Cursor{Seq: rd.next - 1, End: true, TxEnd: !rd.txOpen}.Encode(rd.p.source)
}
