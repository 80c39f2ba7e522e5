package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/change"
)

var (
	testCommit = time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	testCols   = []change.Column{
		{Name: "id", Type: "integer", OID: 23, Key: true},
		{Name: "name", Type: "text", OID: 25},
		{Name: "doc", Type: "text", OID: 25},
	}
)

func testRecord(op change.Op, mod func(*change.Record)) change.Record {
	r := change.Record{
		Source: "shop", ID: change.ID{LSN: 0x16B3748, Pos: 2}, Xid: 771, CommitTime: testCommit,
		Schema: "public", Table: "t", Op: op, Columns: testCols,
	}
	mod(&r)
	return r
}

func TestAppendHuman(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100)
	tests := []struct {
		name string
		rec  change.Record
		want string
	}{
		{"insert", testRecord(change.OpInsert, func(r *change.Record) {
			r.New = []*change.Value{change.Text("1"), change.Text("Ada"), nil}
		}), "insert public.t key={id=1} new={id=1, name=Ada, doc=null}"},
		{"quoted_and_cut", testRecord(change.OpInsert, func(r *change.Record) {
			r.New = []*change.Value{change.Text("1"), change.Text("a b"), change.Text(long)}
			r.Last = true
		}), `new={id=1, name="a b", doc=` + strings.Repeat("x", 59) + "…} (commit)"},
		{"update_unchanged", testRecord(change.OpUpdate, func(r *change.Record) {
			r.New = []*change.Value{change.Text("1"), change.Text("Bo"), nil}
			r.Unchanged = []string{"doc"}
		}), "update public.t key={id=1} new={id=1, name=Bo, doc=<unchanged>}"},
		{"update_key", testRecord(change.OpUpdate, func(r *change.Record) {
			r.New = []*change.Value{change.Text("2"), change.Text("Bo"), nil}
			r.Old = []*change.Value{change.Text("1"), nil, nil}
			r.OldKeyOnly = true
		}), "key={id=2} new={id=2, name=Bo, doc=null} old_key={id=1}"},
		{"delete_key", testRecord(change.OpDelete, func(r *change.Record) {
			r.Old = []*change.Value{change.Text("7"), nil, nil}
			r.OldKeyOnly = true
		}), "delete public.t key={id=7}"},
		{"delete_full", testRecord(change.OpDelete, func(r *change.Record) {
			r.Old = []*change.Value{change.Text("7"), change.Text("Cy"), nil}
		}), "delete public.t key={id=7} old={id=7, name=Cy, doc=null}"},
		{"binary", testRecord(change.OpInsert, func(r *change.Record) {
			r.New = []*change.Value{{Format: change.FormatBinary, Data: []byte{0, 0, 0, 1}}, nil, nil}
		}), `key={id=\x00000001}`},
		{"truncate", testRecord(change.OpTruncate, func(r *change.Record) {
			r.Columns, r.Cascade, r.Last = nil, true, true
		}), "truncate public.t cascade (commit)"},
		{"ddl", testRecord(change.OpDDL, func(r *change.Record) {
			r.Columns = nil
			r.DDL = &change.DDL{Tag: "ALTER TABLE", Statement: "ALTER TABLE t\n  ADD COLUMN x int"}
		}), "ddl ALTER TABLE: ALTER TABLE t ADD COLUMN x int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendHuman(nil, tt.rec))
			prefix := "2025-03-04T05:06:07.891Z 0/16B3748:2 "
			if !strings.HasPrefix(got, prefix) {
				t.Errorf("appendHuman = %q, want prefix %q", got, prefix)
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("appendHuman = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestJSONRecord(t *testing.T) {
	t.Parallel()
	rec := testRecord(change.OpUpdate, func(r *change.Record) {
		r.New = []*change.Value{
			{Format: change.FormatBinary, Data: []byte{1, 2}},
			{Format: change.FormatText, Data: []byte{0xff}},
			nil,
		}
		r.Old = []*change.Value{change.Text("1"), nil, nil}
		r.OldKeyOnly = true
		r.Unchanged = []string{"doc"}
		r.Last = true
	})
	var buf bytes.Buffer
	p := newRecordPrinter(&buf, true)
	if err := p.print(rec); err != nil {
		t.Fatal(err)
	}
	p.flush()

	line := strings.TrimSpace(buf.String())
	want := `"new":{"id":{"b64":"AQI="},"name":{"t64":"/w=="}},"old":{"id":"1"}`
	if !strings.Contains(line, want) {
		t.Errorf("JSON record = %s\nwant it to contain %s", line, want)
	}

	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("JSON record %s: %v", line, err)
	}
	checks := map[string]any{
		"source": "shop", "id": "0/16B3748:2", "lsn": "0/16B3748", "pos": 2.0, "xid": 771.0,
		"commit_time": "2025-03-04T05:06:07.891Z", "schema": "public", "table": "t", "op": "update",
		"last": true, "ddl": nil,
	}
	for k, v := range checks {
		if got[k] != v {
			t.Errorf("JSON record field %s = %v, want %v", k, got[k], v)
		}
	}
	if u, _ := got["unchanged"].([]any); len(u) != 1 || u[0] != "doc" {
		t.Errorf("JSON record unchanged = %v, want [doc]", got["unchanged"])
	}
	if c, _ := got["columns"].([]any); len(c) != 3 {
		t.Errorf("JSON record columns = %v, want 3 columns", got["columns"])
	}
}

func TestTableFilter(t *testing.T) {
	t.Parallel()
	subject := func(schema, table string) string {
		return "pgtide.shop." + schema + "." + table
	}
	tests := []struct {
		patterns []string
		schema   string
		table    string
		want     bool
	}{
		{nil, "public", "orders", true},
		{[]string{"orders"}, "sales", "orders", true},
		{[]string{"public.orders"}, "sales", "orders", false},
		{[]string{"public.*"}, "public", "x", true},
		{[]string{"ord*"}, "public", "orders", true},
		{[]string{"ord*"}, "public", "items", false},
		{[]string{"s?les.*"}, "sales", "items", true},
		{[]string{"items", "orders"}, "public", "orders", true},
	}
	for _, tt := range tests {
		f, err := newTableFilter("shop", tt.patterns)
		if err != nil {
			t.Fatalf("newTableFilter(%q): %v", tt.patterns, err)
		}
		if got := f.match(subject(tt.schema, tt.table)); got != tt.want {
			t.Errorf("filter %q matches %s.%s = %v, want %v", tt.patterns, tt.schema, tt.table, got, tt.want)
		}
	}

	for _, bad := range []string{"a.b.c", `"open.t`, "public."} {
		if _, err := newTableFilter("shop", []string{bad}); err == nil {
			t.Errorf("newTableFilter(%q) succeeded, want an error", bad)
		}
	}
}
