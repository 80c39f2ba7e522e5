package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pgtide/pgtide/client"
)

func TestAppendChange(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 123e6, time.UTC)
	tests := []struct {
		name string
		ch   client.Change
		want string
	}{
		{"insert", client.Change{Op: "insert", Schema: "public", Table: "orders", LSN: "0/16B3748", Pos: 3,
			CommitTime: at, Last: true, Key: json.RawMessage(`{"id":42}`),
			New: json.RawMessage(`{"id":42,"note":"a b","total":"12.50","paid":true,"doc":{"x": [1, 2]},"gone":null}`)},
			`2026-12-03T10:00:00.123Z 0/16B3748:3 insert public.orders key={id=42} ` +
				`new={id=42, note="a b", total=12.50, paid=true, doc={"x":[1,2]}, gone=null} (commit)`},
		{"update_unchanged", client.Change{Op: "update", Schema: "s", Table: "t", LSN: "0/1", Pos: 1, CommitTime: at,
			Key: json.RawMessage(`{"id":1}`), New: json.RawMessage(`{"id":1}`), Unchanged: []string{"big"},
			Old: json.RawMessage(`{"id":0}`)},
			`2026-12-03T10:00:00.123Z 0/1:1 update s.t key={id=1} new={id=1, big=<unchanged>} old={id=0}`},
		{"delete_key_only", client.Change{Op: "delete", Schema: "s", Table: "t", LSN: "0/1", Pos: 2, CommitTime: at,
			Key: json.RawMessage(`{"id":1}`), Old: json.RawMessage(`{"id":1}`)},
			`2026-12-03T10:00:00.123Z 0/1:2 delete s.t key={id=1}`},
		{"ddl", client.Change{Op: "ddl", LSN: "0/2", Pos: 1, CommitTime: at, Last: true,
			DDL: json.RawMessage(`{"tag":"CREATE TABLE","statement":"CREATE TABLE x\n  (id int)"}`)},
			`2026-12-03T10:00:00.123Z 0/2:1 ddl CREATE TABLE: CREATE TABLE x (id int) (commit)`},
		{"commit", client.Change{Op: "commit", LSN: "0/2", Pos: 1, CommitTime: at, Last: true},
			`2026-12-03T10:00:00.123Z 0/2:1 commit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendChange(nil, &tt.ch)); got != tt.want {
				t.Errorf("appendChange(%+v) =\n %s\nwant\n %s", tt.ch, got, tt.want)
			}
		})
	}
}

func TestPrintProgress(t *testing.T) {
	var b strings.Builder
	printProgress(&b, []sourceStatus{{
		Name:     "shop",
		Snapshot: &snapshotProgress{RowsDone: 250, RowsEstimated: 1000, ETASeconds: 30.4},
		Backfills: []backfillProgress{
			{ID: "b1", Table: "public.orders", Rows: 5000},
			{ID: "b1", Table: "public.items"},
		},
	}})
	for _, want := range []string{
		"shop snapshot: 250 rows of ~1000 (25%), ETA 30s",
		"b1  public.orders  5000 rows  running", "b1  public.items  0 rows  queued",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printProgress wrote\n%s\nwant a line containing %q", b.String(), want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	var b strings.Builder
	p := newProgressLine(&b) // not a terminal: one line per change
	p.update("a 1")
	p.update("a 1")
	p.update("a 2")
	p.finish()
	if got := b.String(); got != "a 1\na 2\n" {
		t.Errorf("progress lines = %q, want %q", got, "a 1\na 2\n")
	}
	p = &progressLine{w: &b, terminal: true}
	b.Reset()
	p.update("long line")
	p.update("short")
	p.finish()
	if got := b.String(); got != "\rlong line\rshort    \n" {
		t.Errorf("terminal progress = %q, want %q", got, "\rlong line\rshort    \n")
	}
}
