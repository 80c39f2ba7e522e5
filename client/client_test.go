package client_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgtide/pgtide/client"
	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/gateway"
)

// env is an embedded log with synthetic changes and a gateway that can be
// restarted on the same address.
type env struct {
	t    *testing.T
	log  *changelog.Log
	pub  *changelog.Publisher
	gw   *gateway.Server
	addr string
	lsn  change.LSN
}

func newEnv(t *testing.T) *env {
	l, err := changelog.Open(t.Context(), changelog.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, err := l.EnsureStream(t.Context(), "shop", changelog.Retention{}); err != nil {
		t.Fatal(err)
	}
	pub, err := l.NewPublisher(t.Context(), "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	go func() {
		for range pub.Acked() {
		}
	}()
	e := &env{t: t, log: l, pub: pub, addr: "127.0.0.1:0", lsn: 0x1000}
	e.start()
	return e
}

func (e *env) start() {
	gw, err := gateway.New(gateway.Config{Listen: e.addr}, e.log, nil, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := gw.Start(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	e.gw, e.addr = gw, gw.Addr()
	e.t.Cleanup(func() { gw.Shutdown(context.Background()) })
}

func (e *env) restart() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.gw.Shutdown(ctx)
	e.start()
}

// insert commits one transaction inserting orders first..first+n-1.
func (e *env) insert(first, n int) {
	e.lsn += 0x100
	b := &change.Batch{
		Source: "shop", LSN: e.lsn, FirstPos: 1, Xid: 7, CommitTime: time.Now(),
		Schema: "public", Table: "orders", Op: change.OpInsert, Last: true,
		Columns: []change.Column{
			{Name: "id", Type: "bigint", OID: 20, Key: true},
			{Name: "total", Type: "numeric", OID: 1700},
			{Name: "paid", Type: "boolean", OID: 16},
		},
	}
	for i := range n {
		id := strconv.Itoa(first + i)
		b.Rows = append(b.Rows, change.Row{New: []*change.Value{change.Text(id), change.Text(id + ".50"), change.Text("t")}})
	}
	err := e.pub.Publish(e.t.Context(), changelog.Subject("shop", "public", "orders"), nil, b.AppendJSON(nil), 0)
	if err == nil {
		err = e.pub.Flush(e.t.Context())
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

type order struct {
	ID    int64  `json:"id"`
	Total string `json:"total"`
	Paid  bool   `json:"paid"`
}

// TestSubscribeResumes receives changes over each transport while the
// gateway restarts twice: every order arrives once, in order, decoded,
// and the persisted cursor follows.
func TestSubscribeResumes(t *testing.T) {
	for _, tr := range []struct {
		name string
		tr   client.Transport
	}{{"sse", client.SSE}, {"websocket", client.WebSocket}} {
		t.Run(tr.name, func(t *testing.T) {
			e := newEnv(t)
			e.insert(1, 5)
			var mu sync.Mutex
			saved := ""
			c, err := client.New(client.Options{
				URL: "http://" + e.addr, Transport: tr.tr, MinBackoff: 10 * time.Millisecond,
				OnCursor: func(_ context.Context, cur string) error {
					mu.Lock()
					saved = cur
					mu.Unlock()
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			i := 0
			for ch, err := range c.Changes(t.Context(), client.Subscription{Source: "shop", Tables: []string{"public.orders"}, From: "beginning"}) {
				if err != nil {
					t.Fatalf("Changes: %v", err)
				}
				var o order
				if err := ch.Decode(&o); err != nil {
					t.Fatal(err)
				}
				if o.Total != strconv.FormatInt(o.ID, 10)+".50" || !o.Paid {
					t.Fatalf("decoded %+v from %s", o, ch.New)
				}
				got = append(got, o.ID)
				i++
				switch i {
				case 3, 8:
					e.restart()
					e.insert(i*10, 5)
				}
				if len(got) == 15 {
					break
				}
			}
			want := []int64{1, 2, 3, 4, 5, 30, 31, 32, 33, 34, 80, 81, 82, 83, 84}
			if len(got) != len(want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			for k := range want {
				if got[k] != want[k] {
					t.Fatalf("got %v, want %v", got, want)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if saved == "" {
				t.Fatal("OnCursor never called")
			}
		})
	}
}

// TestSubscribePermanentErrors: errors reconnecting cannot fix end
// Subscribe with a typed error.
func TestSubscribePermanentErrors(t *testing.T) {
	e := newEnv(t)
	c, err := client.New(client.Options{URL: "http://" + e.addr, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Subscribe(t.Context(), client.Subscription{Source: "shop", From: "bogus!"}, func(context.Context, *client.Change) error { return nil })
	var ge *client.Error
	if !errorsAs(err, &ge) || ge.Code != "invalid_cursor" || ge.Status != 400 {
		t.Fatalf("bad cursor: %v", err)
	}
	if client.IsCursorExpired(err) {
		t.Fatal("IsCursorExpired(invalid_cursor)")
	}
	if _, err := client.New(client.Options{URL: "ftp://x"}); err == nil || !strings.Contains(err.Error(), "http") {
		t.Fatalf("New(ftp): %v", err)
	}
}
