package change

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func sampleBatch() *Batch {
	return &Batch{
		Source:     "shop",
		LSN:        0x16B3748,
		FirstPos:   3,
		Xid:        731,
		CommitTime: time.Date(2026, 12, 3, 10, 0, 0, 123456000, time.UTC),
		Schema:     "public",
		Table:      "odd \"name\".\n",
		Op:         OpUpdate,
		Columns: []Column{
			{Name: "id", Type: "bigint", OID: 20, Key: true},
			{Name: "doc", Type: "text", OID: 25},
			{Name: "raw", Type: "bytea", OID: 17},
		},
		Rows: []Row{
			{New: []*Value{Text("1"), nil, {Format: FormatBinary, Data: []byte{0, 1, 255}}}, Unchanged: []string{"doc"}},
			{
				New:        []*Value{Text("2"), {Format: FormatText, Data: []byte{0xff, 'x'}}, Text("\\x00")},
				Old:        []*Value{Text("1"), nil, nil},
				OldKeyOnly: true,
			},
		},
		Last: true,
		DDL:  nil,
	}
}

func TestBatchRoundTrip(t *testing.T) {
	tests := []*Batch{
		sampleBatch(),
		{Source: "s", LSN: 1, FirstPos: 1, Op: OpTruncate, Schema: "a", Table: "b",
			CommitTime: time.Unix(0, 0).UTC(), Rows: []Row{{}}, Cascade: true, RestartIdentity: true},
		{Source: "s", LSN: 1 << 40, FirstPos: 7, Op: OpDDL, Schema: "pgtide", Table: "ddl_log",
			CommitTime: time.Unix(5, 0).UTC(), Rows: []Row{{}}, Last: true,
			DDL: &DDL{Tag: "CREATE TABLE", Statement: "create table t(i int)", Objects: []string{"public.t"}}},
	}
	for _, want := range tests {
		data := want.AppendJSON(nil)
		got, err := DecodeBatch(data)
		if err != nil {
			t.Fatalf("DecodeBatch(%s) error: %v", data, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Errorf("round trip of %s\n got %+v\nwant %+v", data, got, want)
		}
	}
}

func TestBatchRecords(t *testing.T) {
	b := sampleBatch()
	recs := b.Records()
	if len(recs) != 2 {
		t.Fatalf("Records() returned %d records, want 2", len(recs))
	}
	if recs[0].ID != (ID{LSN: 0x16B3748, Pos: 3}) || recs[1].ID.Pos != 4 {
		t.Errorf("record ids = %v, %v; want positions 3 and 4", recs[0].ID, recs[1].ID)
	}
	if recs[0].Last || !recs[1].Last {
		t.Errorf("Last flags = %v, %v; want false, true", recs[0].Last, recs[1].Last)
	}
	if b.LastID() != recs[1].ID {
		t.Errorf("LastID() = %v, want %v", b.LastID(), recs[1].ID)
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"not_json", `{`, "unexpected end"},
		{"version", `{"v":2,"op":"insert","lsn":"0/1","pos":1,"rows":[{}]}`, "encoding version 2"},
		{"op", `{"v":1,"op":"upsert","lsn":"0/1","pos":1,"rows":[{}]}`, `unknown op "upsert"`},
		{"lsn", `{"v":1,"op":"insert","lsn":"01","pos":1,"rows":[{}]}`, "invalid LSN"},
		{"no_rows", `{"v":1,"op":"insert","lsn":"0/1","pos":1,"rows":[]}`, "at least one row"},
		{"width", `{"v":1,"op":"insert","lsn":"0/1","pos":1,"columns":[{"name":"a"}],"rows":[{"new":["1","2"]}]}`, "2 values for 1 columns"},
		{"value", `{"v":1,"op":"insert","lsn":"0/1","pos":1,"columns":[{"name":"a"}],"rows":[{"new":[{"b64":"!"}]}]}`, "bad base64"},
		{"both", `{"v":1,"op":"insert","lsn":"0/1","pos":1,"columns":[{"name":"a"}],"rows":[{"new":[{"b64":"","t64":""}]}]}`, "exactly one"},
		{"overflow", `{"v":1,"op":"insert","lsn":"0/1","pos":4294967295,"rows":[{},{}]}`, "overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeBatch([]byte(tt.in))
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
				t.Errorf("DecodeBatch(%s) error = %v, want it to contain %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseID(t *testing.T) {
	id := ID{LSN: 0x1_0000_00FF, Pos: 42}
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(%q) = %v, %v; want %v", id.String(), got, err, id)
	}
	for _, bad := range []string{"", "0/1", "0/1:x", "x/1:1", "0/1:-1"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) succeeded, want an error", bad)
		}
	}
	if !(ID{LSN: 1, Pos: 9}).Less(ID{LSN: 2, Pos: 1}) || (ID{LSN: 2, Pos: 2}).Less(ID{LSN: 2, Pos: 1}) {
		t.Error("ID.Less does not order by LSN, then position")
	}
}

// FuzzDecodeBatch checks that decoding arbitrary bytes never panics and that
// every batch it accepts survives a re-encode unchanged.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(sampleBatch().AppendJSON(nil))
	f.Add([]byte(`{"v":1,"op":"ddl","lsn":"0/1","pos":1,"rows":[{}],"ddl":{"tag":"x"}}`))
	f.Add([]byte(`{"v":1,"op":"insert","lsn":"0/1","pos":1,"columns":[{"name":"a"}],"rows":[{"new":[{"t64":"/w=="}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBatch(data)
		if err != nil {
			return
		}
		again, err := DecodeBatch(b.AppendJSON(nil))
		if err != nil {
			t.Fatalf("re-decoding an accepted batch failed: %v", err)
		}
		if !reflect.DeepEqual(normalize(again), normalize(b)) {
			t.Fatalf("re-encode changed the batch:\n got %+v\nwant %+v", again, b)
		}
	})
}

// normalize maps representations that encode identically to one form.
func normalize(b *Batch) *Batch {
	c := *b
	c.CommitTime = c.CommitTime.UTC()
	c.Rows = append([]Row(nil), b.Rows...)
	for i := range c.Rows {
		if len(c.Rows[i].Unchanged) == 0 {
			c.Rows[i].Unchanged = nil
		}
		if c.Rows[i].Old == nil {
			c.Rows[i].OldKeyOnly = false
		}
	}
	if len(c.Columns) == 0 {
		c.Columns = nil
	}
	return &c
}
