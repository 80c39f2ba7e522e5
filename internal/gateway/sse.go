package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// serveSSE streams a subscription as Server-Sent Events
// (https://html.spec.whatwg.org/multipage/server-sent-events.html). Each
// change is an event of type "change" (or "commit") whose id is its
// cursor, so a browser's EventSource resumes by itself through
// Last-Event-ID. The stream opens with a "subscribed" event carrying the
// starting cursor and a retry hint; comments keep idle connections alive.
// A failure after the stream started is an "error" event with the error
// JSON (and the cursor to resume from, for slow_consumer), and ends the
// stream.
func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	const transport = "sse"
	s.metrics.connections.WithLabelValues(transport).Inc()
	defer s.metrics.connections.WithLabelValues(transport).Dec()

	id, err := s.identify(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	sub, err := subscriptionFromQuery(r.URL.Query())
	if err != nil {
		s.writeError(w, err)
		return
	}
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		sub.From = last
	}

	ctx, cancel := s.streamContext(r.Context())
	defer cancel()
	rd, start, err := s.subscribe(ctx, id, sub)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.metrics.subscriptions.WithLabelValues(transport).Inc()
	defer s.metrics.subscriptions.WithLabelValues(transport).Dec()

	box := newOutbox(s.cfg.SendBuffer, s.cfg.SlowConsumerTimeout)
	box.setCursor("", start)
	rd.emit = func(ctx context.Context, evs []*event) error {
		return box.push(ctx, frame{evs: evs})
	}
	done := make(chan error, 1)
	go func() { done <- rd.run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	buf := make([]byte, 0, 4096)
	buf = append(buf, "retry: "...)
	buf = strconv.AppendInt(buf, s.cfg.Heartbeat.Milliseconds(), 10)
	buf = append(buf, "\n\nevent: subscribed\nid: "...)
	buf = append(buf, start...)
	buf = append(buf, "\ndata: {\"cursor\":"...)
	buf = appendString(buf, start)
	buf = append(buf, "}\n\n"...)

	heartbeat := time.NewTicker(s.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		if len(buf) > 0 {
			// A write that blocks this long means the client stopped
			// reading; the deadline frees the handler.
			rc.SetWriteDeadline(time.Now().Add(s.cfg.SlowConsumerTimeout))
			if _, err := w.Write(buf); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			buf = buf[:0]
		}

		select {
		case f := <-box.ch:
			buf = appendSSE(buf, f.evs)
			box.wrote("", f.evs)
			s.delivered(transport, f.evs)
			// Batch what else is queued into one write.
			for more := true; more && len(buf) < 64<<10; {
				select {
				case f := <-box.ch:
					buf = appendSSE(buf, f.evs)
					box.wrote("", f.evs)
					s.delivered(transport, f.evs)
				default:
					more = false
				}
			}
		case <-heartbeat.C:
			buf = append(buf, ": ping\n\n"...)
		case err := <-done:
			done <- err
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return
			}
			ge := asError(err)
			if ge.Cursor == "" {
				ge.Cursor = box.cursor("")
			}
			s.metrics.errors.WithLabelValues(ge.Code).Inc()
			data, _ := json.Marshal(ge)
			buf = append(buf, "event: error\ndata: "...)
			buf = append(buf, data...)
			buf = append(buf, "\n\n"...)
			rc.SetWriteDeadline(time.Now().Add(time.Second))
			w.Write(buf)
			rc.Flush()
			return
		}
	}
}

// appendSSE appends evs as SSE events. Event JSON holds no newline, so
// each is one data line.
func appendSSE(b []byte, evs []*event) []byte {
	for _, ev := range evs {
		if ev.op == opCommit {
			b = append(b, "event: commit\nid: "...)
		} else {
			b = append(b, "event: change\nid: "...)
		}
		b = append(b, ev.cursor...)
		b = append(b, "\ndata: "...)
		b = append(b, ev.json...)
		b = append(b, "\n\n"...)
	}
	return b
}
