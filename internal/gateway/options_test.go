package gateway

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

const (
	ins = change.OpInsert
	upd = change.OpUpdate
	del = change.OpDelete
)

// TestSubscriptionOptions checks ops, where, columns, transaction markers,
// debouncing and limit/cursor paging on synthetic transactions.
func TestSubscriptionOptions(t *testing.T) {
	e := newLogEnv(t, Config{})
	s := newSynth(t, e, "opt")
	s.tx(synthOp{"a", ins, 1, "x"}, synthOp{"a", ins, 2, "y"}, synthOp{"b", ins, 3, "z"})
	s.tx(synthOp{"a", upd, 1, "x2"}, synthOp{"a", upd, 1, "x3"})
	s.tx(synthOp{"a", upd, 2, "y2"})
	s.tx(synthOp{"a", del, 2, ""}, synthOp{"a", upd, 1, "x4"})

	base := func(kv ...string) url.Values {
		q := url.Values{"source": {"opt"}, "from": {"beginning"}}
		for i := 0; i < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return q
	}
	cases := []struct {
		name string
		q    url.Values
		want string
	}{
		{"all", base(), "insert:1 insert:2 insert:3 update:1 update:1 update:2 delete:2 update:1 "},
		{"table", base("tables", "public.b"), "insert:3 "},
		{"ops", base("ops", "delete,insert"), "insert:1 insert:2 insert:3 delete:2 "},
		{"where", base("where", `op == "update" && new.v startsWith "x"`), "update:1 update:1 update:1 "},
		{"where_number", base("where", `new.n >= 20`), "insert:2 insert:3 update:2 "},
		{"tx", base("tables", "public.b", "tx", "true"), "insert:3 commit:0 "},
		{"debounce", base("debounce", "10s", "timeout", "0"),
			"insert:1 insert:2 insert:3 update:2 delete:2 update:1 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := poll(t, e, tc.q, "")
			if ids(got) != tc.want {
				t.Errorf("poll %v:\n got %s\nwant %s", tc.q, ids(got), tc.want)
			}
		})
	}

	t.Run("columns", func(t *testing.T) {
		got, _ := poll(t, e, base("columns", "v", "limit", "1"), "")
		if len(got) != 1 || string(got[0].New) != `{"v":"x"}` || got[0].Key != nil {
			t.Errorf("columns=v: %+v", got)
		}
	})

	t.Run("paging", func(t *testing.T) {
		// Pages of 3 resume exactly where the previous ended.
		q := base("limit", "3")
		var all []testChange
		for range 5 {
			got, cur := poll(t, e, q, "")
			all = append(all, got...)
			q.Set("from", cur)
		}
		want := "insert:1 insert:2 insert:3 update:1 update:1 update:2 delete:2 update:1 "
		if ids(all) != want {
			t.Errorf("paged:\n got %s\nwant %s", ids(all), want)
		}
		// The final cursor waits for new changes and then gets them.
		q.Set("timeout", "30s")
		done := make(chan []testChange)
		go func() {
			got, _ := poll(t, e, q, "")
			done <- got
		}()
		time.Sleep(100 * time.Millisecond)
		s.tx(synthOp{"b", ins, 9, "new"})
		if got := <-done; ids(got) != "insert:9 " {
			t.Errorf("long poll after the end: %s", ids(got))
		}
	})
}

// TestCursorExpired purges the log under a cursor: resuming fails with
// cursor_expired (410), never silently skipping.
func TestCursorExpired(t *testing.T) {
	e := newLogEnv(t, Config{})
	s := newSynth(t, e, "exp")
	s.tx(synthOp{"a", ins, 1, "x"}, synthOp{"a", ins, 2, "y"})
	got, _ := poll(t, e, url.Values{"source": {"exp"}, "from": {"beginning"}, "limit": {"1"}}, "")
	if len(got) != 1 {
		t.Fatalf("poll: %+v", got)
	}
	s.tx(synthOp{"a", ins, 3, "z"})

	st, err := e.log.JetStream().Stream(t.Context(), changelog.StreamName("exp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, ge := pollError(t, e, url.Values{"source": {"exp"}, "from": {got[0].Cursor}}, "")
	if code != 410 || ge.Code != CodeCursorExpired {
		t.Fatalf("resume after purge: %d %+v, want 410 cursor_expired", code, ge)
	}
}
