package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestWebSocketMessages sends malformed and valid messages on one
// connection: each bad one gets a precise error and the connection keeps
// serving several subscriptions.
func TestWebSocketMessages(t *testing.T) {
	e := newLogEnv(t, Config{})
	s := newSynth(t, e, "ws")
	s.tx(synthOp{"a", ins, 1, "x"}, synthOp{"b", ins, 2, "y"})

	conn, err := dialWS(t, e, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()

	bad := []struct {
		msg, code, contains string
	}{
		{`{"type":`, CodeBadRequest, "malformed message"},
		{`[1,2]`, CodeBadRequest, "malformed message"},
		{`{"type":"subscribe","id":"x","sauce":"ws"}`, CodeBadRequest, `unknown field "sauce"`},
		{`{"type":"dance"}`, CodeBadRequest, `unknown message type "dance"`},
		{`{"type":"subscribe","source":"ws"}`, CodeBadRequest, "needs an id"},
		{`{"type":"subscribe","id":"x","source":"ws","from":"garbage!"}`, CodeInvalidCursor, "not base64url"},
		{`{"type":"subscribe","id":"x","source":"ws","tables":["public.zzz"]}`, CodeUnknownTable, "public.zzz"},
		{`{"type":"subscribe","id":"x","source":"ws","ops":["upsert"]}`, CodeInvalidOption, `op "upsert"`},
		{`{"type":"unsubscribe","id":"never"}`, CodeBadRequest, `no subscription "never"`},
	}
	for _, b := range bad {
		if err := conn.Write(t.Context(), websocket.MessageText, []byte(b.msg)); err != nil {
			t.Fatal(err)
		}
		m, err := wsRead(t, conn)
		if err != nil {
			t.Fatalf("after %s: %v", b.msg, err)
		}
		if m.Type != "error" || m.Error == nil || m.Error.Code != b.code || !strings.Contains(m.Error.Message, b.contains) {
			t.Errorf("%s: got %+v %+v, want %s containing %q", b.msg, m, m.Error, b.code, b.contains)
		}
	}

	// Two subscriptions on the same connection.
	wsSend(t, conn, map[string]any{"type": "subscribe", "id": "a", "source": "ws", "tables": []string{"public.a"}, "from": "beginning"})
	wsSend(t, conn, map[string]any{"type": "subscribe", "id": "b", "source": "ws", "tables": []string{"public.b"}, "from": "beginning"})
	wsSend(t, conn, map[string]any{"type": "ping"})
	got := map[string]string{}
	for len(got) < 5 {
		m, err := wsRead(t, conn)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case "changes":
			got[m.ID+"/changes"] = ids(m.Changes)
		default:
			got[m.ID+"/"+m.Type] = "ok"
		}
	}
	if got["a/changes"] != "insert:1 " || got["b/changes"] != "insert:2 " || got["/pong"] != "ok" {
		t.Errorf("messages: %v", got)
	}

	wsSend(t, conn, map[string]any{"type": "unsubscribe", "id": "a"})
	if m, _ := wsRead(t, conn); m.Type != "unsubscribed" || m.ID != "a" {
		t.Errorf("unsubscribe: %+v", m)
	}
	s.tx(synthOp{"a", ins, 3, "x"}, synthOp{"b", ins, 4, "y"})
	if m, _ := wsRead(t, conn); m.Type != "changes" || m.ID != "b" || ids(m.Changes) != "insert:4 " {
		t.Errorf("after unsubscribe: %+v", m)
	}
}

// TestSlowConsumer lets a WebSocket client stop reading: the gateway
// disconnects it (with close code 4008 and the cursor, when the close frame
// still fits in the socket; with a bare close otherwise), its memory stays
// bounded, and resuming from the last cursor received delivers the rest.
func TestSlowConsumer(t *testing.T) {
	e := newLogEnv(t, Config{SendBuffer: 1, SlowConsumerTimeout: 300 * time.Millisecond})
	s := newSynth(t, e, "slow")
	// 40 messages of 100 rows of 4 KiB: far more than socket buffers.
	for i := range 40 {
		s.bigBatch("a", i*100, 100, 4<<10)
	}
	if err := s.pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	conn, err := dialWS(t, e, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(64 << 20)
	wsSend(t, conn, map[string]any{"type": "subscribe", "id": "s", "source": "slow", "from": "beginning"})
	time.Sleep(4 * time.Second) // not reading: the gateway gives up after 300ms of a full buffer

	var last string
	n := 0
	for {
		m, err := wsRead(t, conn)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				break // closed without a close frame: the socket was full
			}
			if ce.Code != wsCloseSlowConsumer {
				t.Fatalf("read: %v, want close 4008", err)
			}
			if strings.Contains(ce.Reason, "cursor=") {
				c := ce.Reason[strings.Index(ce.Reason, "cursor=")+len("cursor="):]
				if last != "" && c != last {
					t.Errorf("close reason cursor %s, last received %s", c, last)
				}
			}
			break
		}
		for _, c := range m.Changes {
			last = c.Cursor
			n++
		}
	}
	if n >= 4000 {
		t.Fatalf("received all %d changes; the client was not slow", n)
	}

	// Resume from the last change received: the rest arrives, nothing twice.
	q := url.Values{"source": {"slow"}, "from": {last}, "limit": {"1000"}}
	if last == "" {
		q.Set("from", "beginning")
	}
	for {
		got, cur := poll(t, e, q, "")
		if len(got) == 0 {
			break
		}
		n += len(got)
		q.Set("from", cur)
	}
	if n != 4000 {
		t.Errorf("received %d changes in all, want 4000", n)
	}
}

// TestConsumerGroup shares a group between two members over HTTP:
// acknowledged changes are gone, rejected ones come back.
func TestConsumerGroup(t *testing.T) {
	e := newLogEnv(t, Config{AckWait: 30 * time.Second})
	s := newSynth(t, e, "grp")
	s.tx(synthOp{"a", ins, 1, "x"}, synthOp{"a", ins, 2, "y"}, synthOp{"a", ins, 3, "z"})

	fetch := func(limit string) []testChange {
		var body struct {
			Changes []testChange `json:"changes"`
			Error   *Error       `json:"error"`
		}
		q := url.Values{"source": {"grp"}, "tables": {"public.a"}, "from": {"beginning"}, "limit": {limit}, "timeout": {"1s"}}
		if code := getJSON(t, e.url+"/v1/groups/workers/changes?"+q.Encode(), "", &body); code != 200 {
			t.Fatalf("fetch: %d %+v", code, body.Error)
		}
		return body.Changes
	}
	ack := func(nack bool, cs ...testChange) {
		var req ackRequest
		req.Nack = nack
		for _, c := range cs {
			req.AckIDs = append(req.AckIDs, c.AckID)
		}
		b, _ := json.Marshal(req)
		resp, err := http.Post(e.url+"/v1/groups/workers/ack", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 204 {
			var ae apiError
			json.NewDecoder(resp.Body).Decode(&ae)
			t.Fatalf("ack: status %d: %v", resp.StatusCode, &ae.Error)
		}
	}

	a := fetch("2") // member A takes two
	b := fetch("2") // member B gets the third: the first two are in flight
	if ids(a) != "insert:1 insert:2 " || ids(b) != "insert:3 " || a[0].AckID == "" {
		t.Fatalf("a %s b %s", ids(a), ids(b))
	}
	ack(false, a[0], b[0])
	ack(true, a[1]) // rejected: redelivered
	if again := fetch("10"); ids(again) != "insert:2 " {
		t.Fatalf("redelivery: %s", ids(again))
	} else {
		ack(false, again...)
	}
	if rest := fetch("10"); len(rest) != 0 {
		t.Fatalf("after acks: %s", ids(rest))
	}

	// An ack id of another group is refused.
	b2, _ := json.Marshal(ackRequest{AckIDs: []string{a[0].AckID}})
	resp, err := http.Post(e.url+"/v1/groups/other/ack", "application/json", bytes.NewReader(b2))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("foreign ack: status %d, want 400", resp.StatusCode)
	}
}
