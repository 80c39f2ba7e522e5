package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pgtidev1 "github.com/pgtide/pgtide/proto/pgtide/v1"
)

// receiver reads the changes of one subscription over one transport.
type receiver interface {
	// next returns the next change. An error means the stream ended.
	next(t *testing.T) (testChange, error)
	close()
}

// transport opens subscriptions over one transport, so one test body runs
// on all of them (like net/http's clientserver_test).
type transport struct {
	name string
	open func(t *testing.T, e *testEnv, sub Subscription, token string) (receiver, error)
}

var transports = []transport{
	{"longpoll", openLongPoll},
	{"sse", openSSE},
	{"websocket", openWS},
	{"grpc", openGRPC},
}

// --- long poll ---

type longPollReceiver struct {
	e      *testEnv
	q      url.Values
	token  string
	cursor string
	buf    []testChange
}

func openLongPoll(t *testing.T, e *testEnv, sub Subscription, token string) (receiver, error) {
	q := url.Values{"source": {sub.Source}, "timeout": {"2s"}, "limit": {"7"}}
	for _, tb := range sub.Tables {
		q.Add("table", tb)
	}
	if sub.Where != "" {
		q.Set("where", sub.Where)
	}
	r := &longPollReceiver{e: e, q: q, token: token, cursor: sub.From}
	// Poll once to surface subscription errors at open.
	if err := r.poll(t); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *longPollReceiver) poll(t *testing.T) error {
	q := url.Values{}
	for k, v := range r.q {
		q[k] = v
	}
	if r.cursor != "" {
		q.Set("from", r.cursor)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, changesURL(r.e.url, q), nil)
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ae apiError
		json.NewDecoder(resp.Body).Decode(&ae)
		return &ae.Error
	}
	var body struct {
		Changes []testChange `json:"changes"`
		Cursor  string       `json:"cursor"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err
	}
	r.buf = append(r.buf, body.Changes...)
	r.cursor = body.Cursor
	return nil
}

func (r *longPollReceiver) next(t *testing.T) (testChange, error) {
	deadline := time.Now().Add(60 * time.Second)
	for len(r.buf) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("long poll: no change within 60s")
		}
		if err := r.poll(t); err != nil {
			return testChange{}, err
		}
	}
	c := r.buf[0]
	r.buf = r.buf[1:]
	return c, nil
}

func (r *longPollReceiver) close() {}

// --- SSE ---

type sseReceiver struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func openSSE(t *testing.T, e *testEnv, sub Subscription, token string) (receiver, error) {
	q := url.Values{"source": {sub.Source}, "tables": {strings.Join(sub.Tables, ",")}}
	if sub.Where != "" {
		q.Set("where", sub.Where)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, changesURL(e.url, q), nil)
	req.Header.Set("Accept", "text/event-stream")
	if sub.From != "" {
		req.Header.Set("Last-Event-ID", sub.From)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var ae apiError
		json.NewDecoder(resp.Body).Decode(&ae)
		return nil, &ae.Error
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	return &sseReceiver{resp: resp, sc: sc}, nil
}

func (r *sseReceiver) next(t *testing.T) (testChange, error) {
	var typ, id, data string
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if typ == "change" {
				var c testChange
				if err := json.Unmarshal([]byte(data), &c); err != nil {
					t.Fatalf("sse: bad change %q: %v", data, err)
				}
				if c.Cursor != id {
					t.Fatalf("sse: id %q differs from the change's cursor %q", id, c.Cursor)
				}
				return c, nil
			}
			if typ == "error" {
				var ge Error
				json.Unmarshal([]byte(data), &ge)
				return testChange{}, &ge
			}
			typ, id, data = "", "", ""
		case strings.HasPrefix(line, "event: "):
			typ = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
	if err := r.sc.Err(); err != nil {
		return testChange{}, err
	}
	return testChange{}, errors.New("sse: stream ended")
}

func (r *sseReceiver) close() { r.resp.Body.Close() }

// --- WebSocket ---

type wsReceiver struct {
	conn *websocket.Conn
	buf  []testChange
}

// wsMessage is a server message.
type wsMessage struct {
	Type    string       `json:"type"`
	ID      string       `json:"id"`
	Cursor  string       `json:"cursor"`
	Changes []testChange `json:"changes"`
	Error   *Error       `json:"error"`
}

func dialWS(t *testing.T, e *testEnv, token string) (*websocket.Conn, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	conn, resp, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(e.url, "http")+"/v1/ws",
		&websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			return nil, &Error{Code: http.StatusText(resp.StatusCode), Message: err.Error()}
		}
		return nil, err
	}
	conn.SetReadLimit(16 << 20)
	return conn, nil
}

func wsSend(t *testing.T, conn *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := conn.Write(t.Context(), websocket.MessageText, b); err != nil {
		t.Fatalf("ws write: %v", err)
	}
}

func wsRead(t *testing.T, conn *websocket.Conn) (wsMessage, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	_, data, err := conn.Read(ctx)
	if err != nil {
		return wsMessage{}, err
	}
	var m wsMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("ws: bad message %q: %v", data, err)
	}
	return m, nil
}

func openWS(t *testing.T, e *testEnv, sub Subscription, token string) (receiver, error) {
	conn, err := dialWS(t, e, token)
	if err != nil {
		return nil, err
	}
	wsSend(t, conn, wsRequest{Type: "subscribe", ID: "s1", Subscription: sub})
	m, err := wsRead(t, conn)
	if err != nil {
		return nil, err
	}
	if m.Type == "error" {
		conn.CloseNow()
		return nil, m.Error
	}
	if m.Type != "subscribed" || m.ID != "s1" || m.Cursor == "" {
		t.Fatalf("ws: first message %+v, want subscribed s1 with a cursor", m)
	}
	return &wsReceiver{conn: conn}, nil
}

func (r *wsReceiver) next(t *testing.T) (testChange, error) {
	for len(r.buf) == 0 {
		m, err := wsRead(t, r.conn)
		if err != nil {
			return testChange{}, err
		}
		switch m.Type {
		case "changes":
			if m.ID != "s1" {
				t.Fatalf("ws: changes for %q", m.ID)
			}
			r.buf = append(r.buf, m.Changes...)
		case "error":
			return testChange{}, m.Error
		}
	}
	c := r.buf[0]
	r.buf = r.buf[1:]
	return c, nil
}

func (r *wsReceiver) close() { r.conn.CloseNow() }

// --- gRPC ---

type grpcReceiver struct {
	cc     *grpc.ClientConn
	stream pgtidev1.Gateway_SubscribeClient
	cancel context.CancelFunc
	buf    []testChange
}

func grpcConn(t *testing.T, e *testEnv) *grpc.ClientConn {
	cc, err := grpc.NewClient(strings.TrimPrefix(e.url, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	return cc
}

func openGRPC(t *testing.T, e *testEnv, sub Subscription, token string) (receiver, error) {
	cc := grpcConn(t, e)
	ctx, cancel := context.WithCancel(t.Context())
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := pgtidev1.NewGatewayClient(cc).Subscribe(ctx, &pgtidev1.SubscribeRequest{
		Subscription: &pgtidev1.Subscription{Source: sub.Source, Tables: sub.Tables, Where: sub.Where},
		From:         sub.From,
	})
	if err != nil {
		cancel()
		cc.Close()
		return nil, err
	}
	return &grpcReceiver{cc: cc, stream: stream, cancel: cancel}, nil
}

func (r *grpcReceiver) next(t *testing.T) (testChange, error) {
	for len(r.buf) == 0 {
		resp, err := r.stream.Recv()
		if err != nil {
			return testChange{}, err
		}
		for _, c := range resp.Changes {
			var tc testChange
			if err := json.Unmarshal(c.Json, &tc); err != nil {
				t.Fatalf("grpc: bad change JSON %q: %v", c.Json, err)
			}
			if tc.Cursor != c.Cursor || tc.Op != c.Op || tc.LSN != c.Lsn {
				t.Fatalf("grpc: fields %v/%v/%v differ from the JSON %s", c.Cursor, c.Op, c.Lsn, c.Json)
			}
			r.buf = append(r.buf, tc)
		}
	}
	c := r.buf[0]
	r.buf = r.buf[1:]
	return c, nil
}

func (r *grpcReceiver) close() {
	r.cancel()
	r.cc.Close()
}

func mustOpen(t *testing.T, tr transport, e *testEnv, sub Subscription, token string) receiver {
	t.Helper()
	r, err := tr.open(t, e, sub, token)
	if err != nil {
		t.Fatalf("%s: open %+v: %v", tr.name, sub, err)
	}
	return r
}

func describe(err error) string { return fmt.Sprintf("%T %v", err, err) }
