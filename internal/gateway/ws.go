package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WebSocket close codes of the gateway (the 4000-4999 range is for
// applications, RFC 6455 section 7.4.2).
const (
	// wsCloseSlowConsumer: the client did not keep up; the reason reads
	// "slow_consumer id=<subscription> cursor=<cursor>".
	wsCloseSlowConsumer websocket.StatusCode = 4008
)

// maxWSMessage bounds a client message.
const maxWSMessage = 64 << 10

// wsRequest is a message from a WebSocket client.
type wsRequest struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Subscription
}

// handleWebSocket serves /v1/ws. The client sends JSON messages:
//
//	{"type":"subscribe","id":"s1","source":"shop","tables":["public.orders"],"from":"now",…}
//	{"type":"unsubscribe","id":"s1"}
//	{"type":"ping"}
//
// and receives
//
//	{"type":"subscribed","id":"s1","cursor":"…"}
//	{"type":"changes","id":"s1","changes":[…]}
//	{"type":"unsubscribed","id":"s1"}
//	{"type":"error","id":"s1","error":{"code":…,"message":…,"cursor":…}}
//	{"type":"pong"}
//
// An error with an id ends that subscription only; one without answers a
// malformed message. Either way the connection stays open. A client too
// slow to read is disconnected with close code 4008.
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	const transport = "websocket"
	id, err := s.identify(r)
	if err != nil {
		s.writeError(w, err)
		return
	}

	opts := &websocket.AcceptOptions{}
	if slices.Contains(s.cfg.CORSOrigins, "*") {
		opts.InsecureSkipVerify = true
	} else {
		opts.OriginPatterns = s.cfg.CORSOrigins
	}
	conn, err := websocket.Accept(w, r, opts)
	if err != nil {
		s.metrics.errors.WithLabelValues(CodeBadRequest).Inc()
		return
	}
	conn.SetReadLimit(maxWSMessage)
	s.metrics.connections.WithLabelValues(transport).Inc()
	defer s.metrics.connections.WithLabelValues(transport).Dec()

	ctx, cancel := s.streamContext(r.Context())
	defer cancel()
	c := &wsConn{
		s: s, id: id, conn: conn, ctx: ctx, cancel: cancel,
		box:  newOutbox(s.cfg.SendBuffer, s.cfg.SlowConsumerTimeout),
		subs: make(map[string]context.CancelFunc),
	}
	go c.readLoop()
	go c.pingLoop()
	status, reason := c.writeLoop()
	cancel()
	c.wg.Wait()
	conn.Close(status, reason)
}

// wsConn is one WebSocket connection.
type wsConn struct {
	s      *Server
	id     *identity
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	box    *outbox
	wg     sync.WaitGroup // subscription readers
	// slow is set when a subscription found the send queue full for too
	// long; the connection then closes with its cursor.
	slow atomic.Pointer[Error]

	// mu guards subs.
	mu   sync.Mutex
	subs map[string]context.CancelFunc
}

// readLoop handles client messages until the connection ends.
func (c *wsConn) readLoop() {
	defer c.cancel()
	for {
		typ, data, err := c.conn.Read(c.ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.reply(wsError("", errorf(CodeBadRequest, "binary messages are not supported; send JSON text")))
			continue
		}
		var req wsRequest
		dec := json.NewDecoder(bytesReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			c.s.metrics.errors.WithLabelValues(CodeBadRequest).Inc()
			c.reply(wsError("", errorf(CodeBadRequest, "malformed message: %v", err)))
			continue
		}
		switch req.Type {
		case "subscribe":
			c.subscribe(req)
		case "unsubscribe":
			c.unsubscribe(req.ID)
		case "ping":
			c.reply([]byte(`{"type":"pong"}`))
		default:
			c.s.metrics.errors.WithLabelValues(CodeBadRequest).Inc()
			c.reply(wsError(req.ID, errorf(CodeBadRequest, "unknown message type %q (subscribe, unsubscribe or ping)", req.Type)))
		}
	}
}

// reply queues a control message; a full queue means a slow client, whose
// connection the writer is about to close.
func (c *wsConn) reply(msg []byte) {
	select {
	case c.box.ch <- frame{evs: []*event{{json: msg}}}:
	case <-c.ctx.Done():
	case <-time.After(c.box.slow):
		c.cancel()
	}
}

func (c *wsConn) subscribe(req wsRequest) {
	if req.ID == "" || len(req.ID) > maxSubIDLen {
		c.reply(wsError(req.ID, errorf(CodeBadRequest, "subscribe needs an id of 1 to %d characters", maxSubIDLen)))
		return
	}
	c.mu.Lock()
	_, dup := c.subs[req.ID]
	n := len(c.subs)
	c.mu.Unlock()
	if dup {
		c.reply(wsError(req.ID, errorf(CodeBadRequest, "subscription %q exists; unsubscribe first", req.ID)))
		return
	}
	if n >= c.s.cfg.MaxSubscriptions {
		c.reply(wsError(req.ID, errorf(CodeBadRequest, "at most %d subscriptions per connection", c.s.cfg.MaxSubscriptions)))
		return
	}

	rd, start, err := c.s.subscribe(c.ctx, c.id, req.Subscription)
	if err != nil {
		c.s.metrics.errors.WithLabelValues(asError(err).Code).Inc()
		c.reply(wsError(req.ID, err))
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.subs[req.ID] = cancel
	c.mu.Unlock()
	c.box.setCursor(req.ID, start)

	msg, _ := json.Marshal(map[string]string{"type": "subscribed", "id": req.ID, "cursor": start})
	c.reply(msg)

	sub := req.ID
	rd.emit = func(ctx context.Context, evs []*event) error {
		return c.box.push(ctx, frame{sub: sub, evs: evs})
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.s.metrics.subscriptions.WithLabelValues("websocket").Inc()
		defer c.s.metrics.subscriptions.WithLabelValues("websocket").Dec()
		err := rd.run(ctx)
		if ctx.Err() != nil {
			return
		}
		if ge := asError(err); ge.Code == CodeSlowConsumer {
			c.slow.CompareAndSwap(nil, &Error{Code: ge.Code, Message: sub, Cursor: ge.Cursor})
			c.cancel()
			return
		}
		select {
		case c.box.ch <- frame{sub: sub, err: err}:
		case <-c.ctx.Done():
		case <-time.After(c.box.slow):
			c.cancel()
		}
	}()
}

func (c *wsConn) unsubscribe(id string) {
	c.mu.Lock()
	cancel, ok := c.subs[id]
	delete(c.subs, id)
	c.mu.Unlock()
	if !ok {
		c.reply(wsError(id, errorf(CodeBadRequest, "no subscription %q", id)))
		return
	}
	cancel()
	c.box.forget(id)
	msg, _ := json.Marshal(map[string]string{"type": "unsubscribed", "id": id})
	c.reply(msg)
}

// writeLoop writes queued frames until the connection ends, and returns
// the close status.
func (c *wsConn) writeLoop() (websocket.StatusCode, string) {
	buf := make([]byte, 0, 4096)
	var pending *frame
	for {
		var f frame
		if pending != nil {
			f, pending = *pending, nil
		} else {
			select {
			case <-c.ctx.Done():
				if ge := c.slow.Load(); ge != nil {
					c.s.metrics.errors.WithLabelValues(CodeSlowConsumer).Inc()
					return wsCloseSlowConsumer, fmt.Sprintf("slow_consumer id=%s cursor=%s", ge.Message, ge.Cursor)
				}
				if c.s.ctx.Err() != nil {
					return websocket.StatusGoingAway, "gateway shutting down; resume from your cursors"
				}
				return websocket.StatusNormalClosure, ""
			case f = <-c.box.ch:
			}
		}
		if f.sub != "" && f.err == nil {
			// A client that fell behind gets what is queued for the
			// same subscription in one message: fewer, larger writes.
			f.evs = slices.Clip(f.evs)
			for more := true; more && len(f.evs) < 4096; {
				select {
				case g := <-c.box.ch:
					if g.sub == f.sub && g.err == nil {
						f.evs = append(f.evs, g.evs...)
					} else {
						pending, more = &g, false
					}
				default:
					more = false
				}
			}
		}

		switch {
		case f.err != nil:
			ge := asError(f.err)
			if ge.Cursor == "" {
				ge.Cursor = c.box.cursor(f.sub)
			}
			c.s.metrics.errors.WithLabelValues(ge.Code).Inc()
			if ge.Code == CodeSlowConsumer {
				return wsCloseSlowConsumer, fmt.Sprintf("slow_consumer id=%s cursor=%s", f.sub, ge.Cursor)
			}
			c.mu.Lock()
			delete(c.subs, f.sub)
			c.mu.Unlock()
			buf = append(buf[:0], wsError(f.sub, ge)...)
		case f.sub == "":
			buf = append(buf[:0], f.evs[0].json...)
		default:
			buf = append(buf[:0], `{"type":"changes","id":`...)
			buf = appendString(buf, f.sub)
			buf = append(buf, `,"changes":[`...)
			for i, ev := range f.evs {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, ev.json...)
			}
			buf = append(buf, "]}"...)
		}

		wctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.SlowConsumerTimeout)
		err := c.conn.Write(wctx, websocket.MessageText, buf)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return wsCloseSlowConsumer, "slow_consumer"
			}
			return websocket.StatusNormalClosure, ""
		}
		if f.sub != "" && f.err == nil {
			c.box.wrote(f.sub, f.evs)
			c.s.delivered("websocket", f.evs)
		}
	}
}

// pingLoop pings the client every heartbeat; a client that does not answer
// within the slow-consumer timeout is disconnected.
func (c *wsConn) pingLoop() {
	t := time.NewTicker(c.s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.SlowConsumerTimeout)
		err := c.conn.Ping(ctx)
		cancel()
		if err != nil {
			c.cancel()
			return
		}
	}
}

// wsError returns an "error" message.
func wsError(id string, err error) []byte {
	msg := struct {
		Type  string `json:"type"`
		ID    string `json:"id,omitempty"`
		Error *Error `json:"error"`
	}{"error", id, asError(err)}
	b, _ := json.Marshal(msg)
	return b
}
