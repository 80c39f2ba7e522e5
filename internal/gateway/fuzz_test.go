package gateway

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/pgtide/pgtide/internal/change"
)

func FuzzParseCursor(f *testing.F) {
	f.Add("src", Cursor{Seq: 42, Index: 3, TxEnd: true, ID: change.ID{LSN: 0x16B3748, Pos: 9}}.Encode("src"))
	f.Add("src", Cursor{Seq: 0, End: true}.Encode("src"))
	f.Add("src", "AQEBAgMEBQYH")
	f.Add("x", "")
	f.Fuzz(func(t *testing.T, source, s string) {
		c, err := ParseCursor(source, s)
		if err != nil {
			if ge := asError(err); ge.Code != CodeInvalidCursor {
				t.Fatalf("ParseCursor(%q): error code %s", s, ge.Code)
			}
			return
		}
		// Whatever parses re-encodes to a cursor that parses the same.
		again, err := ParseCursor(source, c.Encode(source))
		if err != nil || again != c {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, again, err, c)
		}
	})
}

func FuzzSubscriptionQuery(f *testing.F) {
	f.Add("source=src&tables=public.a,%22x,y%22.b&ops=insert&columns=id,v&where=new.id+%3E+1&tx=true&debounce=1s&from=now")
	f.Add("source=src&table=*.*&where=op+in+%5B%22insert%22%5D")
	f.Add("source=&tables=%22")
	f.Add("source=a&debounce=-1s&tx=maybe")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		sub, err := subscriptionFromQuery(q, "limit", "timeout")
		if err != nil {
			return
		}
		if _, err := compile(sub, anonymous); err != nil {
			if ge := asError(err); ge.Code == CodeInternal {
				t.Fatalf("compile %+v: internal error %v", sub, err)
			}
		}
	})
}

func FuzzWebSocketMessage(f *testing.F) {
	f.Add([]byte(`{"type":"subscribe","id":"s1","source":"src","tables":["public.a"],"from":"beginning"}`))
	f.Add([]byte(`{"type":"unsubscribe","id":"s1"}`))
	f.Add([]byte(`{"type":"subscribe","id":1}`))
	f.Add([]byte(`{"type":"subscribe","where":"new.x ?? 1 > 0","source":"s"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req wsRequest
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if dec.Decode(&req) != nil {
			return
		}
		compile(req.Subscription, anonymous)
		// The error reply is valid JSON whatever the input.
		if !json.Valid(wsError(req.ID, errorf(CodeBadRequest, "x %q", data))) {
			t.Fatalf("invalid error reply for %q", data)
		}
	})
}

func FuzzPredicate(f *testing.F) {
	f.Add(`new.amount > 100 && op == "update"`)
	f.Add(`old.id == new.id`)
	f.Add(`table matches "^ord" or len(new) > 2`)
	f.Add(`new.`)
	f.Fuzz(func(t *testing.T, where string) {
		p, err := compilePredicate(where)
		if err != nil {
			return
		}
		r := change.Record{
			Op: change.OpUpdate, Schema: "public", Table: "t",
			Columns: []change.Column{{Name: "id", OID: oidInt4, Key: true}, {Name: "doc", OID: oidJSONB}},
			New:     []*change.Value{change.Text("1"), change.Text(`{"a":[1,2]}`)},
		}
		p.match(predicateEnv(&r, nil))
	})
}

func FuzzAppendValue(f *testing.F) {
	for _, seed := range []struct {
		oid  uint32
		text string
	}{
		{oidInt4, "42"}, {oidInt8, "9007199254740993"}, {oidFloat8, "NaN"}, {oidFloat8, "1e+30"},
		{oidNumeric, "1.50"}, {oidBool, "t"}, {oidJSONB, `{"a": [1, 2]}`}, {25, "line\nbreak \u2028"},
		{oidInt2, "-0"}, {oidFloat4, "-Infinity"}, {oidJSON, "not json"},
	} {
		f.Add(seed.oid, []byte(seed.text), byte('t'))
	}
	f.Fuzz(func(t *testing.T, oid uint32, data []byte, format byte) {
		v := &change.Value{Format: change.Format(format), Data: data}
		out := appendValue(nil, oid, v)
		if !json.Valid(out) || bytes.ContainsAny(out, "\n\r") {
			t.Fatalf("appendValue(%d, %q) = %s: not one line of valid JSON", oid, data, out)
		}
		if format == 't' && oid == 25 {
			var s string
			if json.Unmarshal(out, &s) == nil && s != string(data) {
				t.Fatalf("text %q came back as %q", data, s)
			}
		}
	})
}
