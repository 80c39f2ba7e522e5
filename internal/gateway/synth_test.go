package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// newLogEnv starts an embedded log without Postgres; tests fill sources
// with synthetic batches through a synth.
func newLogEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	l, err := changelog.Open(t.Context(), changelog.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("open change log: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	cfg.Listen = "127.0.0.1:0"
	e := &testEnv{log: l, cfg: cfg, top: t}
	e.startGateway(t)
	return e
}

// synth writes synthetic transactions to the log of one source, as
// capture would.
type synth struct {
	t      *testing.T
	source string
	pub    *changelog.Publisher
	lsn    change.LSN
}

func newSynth(t *testing.T, e *testEnv, source string) *synth {
	t.Helper()
	if _, err := e.log.EnsureStream(t.Context(), source, changelog.Retention{}); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	pub, err := e.log.NewPublisher(t.Context(), source, 0)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { pub.Close() })
	go func() {
		for range pub.Acked() {
		}
	}()
	return &synth{t: t, source: source, pub: pub, lsn: 0x1000000}
}

var synthColumns = []change.Column{
	{Name: "id", Type: "integer", OID: oidInt4, Key: true},
	{Name: "v", Type: "text", OID: 25},
	{Name: "n", Type: "integer", OID: oidInt4},
}

// row returns the values of a synthetic row.
func row(id int, v string) []*change.Value {
	return []*change.Value{change.Text(strconv.Itoa(id)), change.Text(v), change.Text(strconv.Itoa(id * 10))}
}

// synthOp is one record of a synthetic transaction.
type synthOp struct {
	table string
	op    change.Op
	id    int
	v     string
}

// tx writes one transaction, one message per record (plus the batch
// grouping of consecutive records of one table when group is set).
func (s *synth) tx(ops ...synthOp) {
	s.t.Helper()
	s.lsn += 0x100
	for i, o := range ops {
		b := &change.Batch{
			Source: s.source, LSN: s.lsn, FirstPos: uint32(i + 1), Xid: uint32(s.lsn),
			CommitTime: time.Now(), Schema: "public", Table: o.table, Op: o.op,
			Columns: synthColumns, Last: i == len(ops)-1,
		}
		switch o.op {
		case change.OpDelete:
			b.Rows = []change.Row{{Old: []*change.Value{change.Text(strconv.Itoa(o.id)), nil, nil}, OldKeyOnly: true}}
		default:
			b.Rows = []change.Row{{New: row(o.id, o.v)}}
		}
		s.publish(b)
	}
	if err := s.pub.Flush(s.t.Context()); err != nil {
		s.t.Fatalf("flush: %v", err)
	}
}

func (s *synth) publish(b *change.Batch) {
	s.t.Helper()
	subj := changelog.Subject(s.source, b.Schema, b.Table)
	if err := s.pub.Publish(s.t.Context(), subj, nil, b.AppendJSON(nil), 0); err != nil {
		s.t.Fatalf("publish: %v", err)
	}
}

// bigBatch writes one message of n inserts, each with a value of size
// bytes.
func (s *synth) bigBatch(table string, first, n, size int) {
	s.t.Helper()
	s.lsn += 0x100
	b := &change.Batch{
		Source: s.source, LSN: s.lsn, FirstPos: 1, Xid: 1, CommitTime: time.Now(),
		Schema: "public", Table: table, Op: change.OpInsert, Columns: synthColumns, Last: true,
	}
	pad := make([]byte, size)
	for i := range pad {
		pad[i] = 'x'
	}
	for i := range n {
		b.Rows = append(b.Rows, change.Row{New: row(first+i, string(pad))})
	}
	s.publish(b)
}

// poll runs one long poll and returns the changes and the next cursor.
func poll(t *testing.T, e *testEnv, q url.Values, token string) ([]testChange, string) {
	t.Helper()
	if q.Get("timeout") == "" {
		q.Set("timeout", "0")
	}
	var body struct {
		Changes []testChange `json:"changes"`
		Cursor  string       `json:"cursor"`
		Error   *Error       `json:"error"`
	}
	if code := getJSON(t, changesURL(e.url, q), token, &body); code != 200 {
		t.Fatalf("poll %v: status %d: %+v", q, code, body.Error)
	}
	return body.Changes, body.Cursor
}

// pollError runs a long poll that must fail and returns its status and
// error.
func pollError(t *testing.T, e *testEnv, q url.Values, token string) (int, Error) {
	t.Helper()
	q.Set("timeout", "0")
	var body apiError
	code := getJSON(t, changesURL(e.url, q), token, &body)
	return code, body.Error
}

func ids(cs []testChange) string {
	s := ""
	for _, c := range cs {
		var k struct{ ID int }
		json.Unmarshal(c.Key, &k)
		s += fmt.Sprintf("%s:%d ", c.Op, k.ID)
	}
	return s
}

// shutdown stops e's gateway now.
func (e *testEnv) shutdown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.gw.Shutdown(ctx)
}
