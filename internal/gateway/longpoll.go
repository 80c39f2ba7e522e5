package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Long poll defaults.
const (
	defaultPollLimit   = 100
	maxPollLimit       = 1000
	defaultPollTimeout = 30 * time.Second
)

// serveLongPoll answers GET /v1/changes with up to limit changes and the
// cursor to poll from next. Without new changes it holds the request up
// to timeout and then answers with no change and a cursor that skips what
// it examined.
func (s *Server) serveLongPoll(w http.ResponseWriter, r *http.Request) {
	s.metrics.connections.WithLabelValues("longpoll").Inc()
	defer s.metrics.connections.WithLabelValues("longpoll").Dec()

	req, err := s.parsePoll(r)
	if err != nil {
		s.writeError(w, err)
		return
	}

	ctx, cancel := s.streamContext(r.Context())
	defer cancel()
	res, err := s.poll(ctx, req.id, req.sub, req.limit, req.timeout)
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.delivered("longpoll", res.events)

	b := make([]byte, 0, 64+256*len(res.events))
	b = append(b, `{"changes":[`...)
	for i, ev := range res.events {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev.json...)
	}
	b = append(b, `],"cursor":`...)
	b = appendString(b, res.cursor)
	b = append(b, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// pollRequest is what a long poll, plain or of a consumer group, asks for.
type pollRequest struct {
	id      *identity
	sub     Subscription
	limit   int
	timeout time.Duration
}

// parsePoll authenticates a long poll and reads its query.
func (s *Server) parsePoll(r *http.Request) (pollRequest, error) {
	id, err := s.identify(r)
	if err != nil {
		return pollRequest{}, err
	}
	q := r.URL.Query()
	sub, err := subscriptionFromQuery(q, "limit", "timeout")
	if err != nil {
		return pollRequest{}, err
	}
	limit, timeout, err := s.pollParams(q.Get("limit"), q.Get("timeout"))
	if err != nil {
		return pollRequest{}, err
	}
	return pollRequest{id: id, sub: sub, limit: limit, timeout: timeout}, nil
}

func (s *Server) pollParams(limitText, timeoutText string) (int, time.Duration, error) {
	limit, timeout := defaultPollLimit, defaultPollTimeout
	if limitText != "" {
		n, err := strconv.Atoi(limitText)
		if err != nil || n < 1 || n > maxPollLimit {
			return 0, 0, errorf(CodeInvalidOption, "limit %q is not a number from 1 to %d", limitText, maxPollLimit)
		}
		limit = n
	}
	if timeoutText != "" {
		d, err := time.ParseDuration(timeoutText)
		if err != nil {
			// A bare number is seconds.
			n, nerr := strconv.ParseFloat(timeoutText, 64)
			if nerr != nil || n < 0 || n > s.cfg.MaxPollTimeout.Seconds() {
				return 0, 0, errorf(CodeInvalidOption, "timeout %q is not a duration from 0s to %v", timeoutText, s.cfg.MaxPollTimeout)
			}
			d = time.Duration(n * float64(time.Second))
		}
		if d < 0 || d > s.cfg.MaxPollTimeout {
			return 0, 0, errorf(CodeInvalidOption, "timeout %q is not a duration from 0s to %v", timeoutText, s.cfg.MaxPollTimeout)
		}
		timeout = d
	}
	return limit, timeout, nil
}

// pollResult is the answer to one poll.
type pollResult struct {
	events []*event
	cursor string
}

// poll collects up to limit events of sub, waiting up to timeout for the
// first one.
func (s *Server) poll(ctx context.Context, id *identity, sub Subscription, limit int, timeout time.Duration) (pollResult, error) {
	var res pollResult
	rd, start, err := s.subscribe(ctx, id, sub)
	if err != nil {
		return res, err
	}
	res.cursor = start

	// A zero timeout answers with what is there: idle ends the read.
	rctx, cancel := ctx, context.CancelFunc(func() {})
	rd.eager = timeout == 0
	if timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	rd.emit = func(_ context.Context, evs []*event) error {
		res.events = append(res.events, evs...)
		if len(res.events) >= limit {
			return errStopReader
		}
		return nil
	}
	rd.idle = func() error {
		if len(res.events) > 0 || timeout == 0 {
			return errStopReader
		}
		return nil
	}
	err = rd.run(rctx)
	switch {
	case errors.Is(err, errStopReader):
	case rctx.Err() != nil && ctx.Err() == nil:
		// The poll's timeout: answer with what there is.
	default:
		return res, err
	}

	if len(res.events) < limit {
		rd.flush(ctx)
	}
	if len(res.events) > limit {
		// Cut after limit changes, keeping the commit that may follow
		// the last one so a transaction boundary is not lost.
		n := limit
		for n < len(res.events) && res.events[n].op == opCommit {
			n++
		}
		res.events = res.events[:n]
	}
	if len(res.events) >= limit {
		res.cursor = res.events[len(res.events)-1].cursor
	} else {
		res.cursor = rd.scanCursor()
	}
	return res, nil
}
