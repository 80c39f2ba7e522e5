package gateway

import (
	"testing"

	"github.com/pgtide/pgtide/internal/change"
)

func TestAppendValue(t *testing.T) {
	tests := []struct {
		oid  uint32
		v    *change.Value
		want string
	}{
		{oidInt4, change.Text("42"), `42`},
		{oidInt2, change.Text("-7"), `-7`},
		{oidOID, change.Text("16384"), `16384`},
		{oidInt8, change.Text("9007199254740992"), `9007199254740992`},
		{oidInt8, change.Text("9007199254740993"), `"9007199254740993"`},
		{oidInt8, change.Text("-9223372036854775808"), `"-9223372036854775808"`},
		{oidNumeric, change.Text("12345678901234567890.000001"), `"12345678901234567890.000001"`},
		{oidFloat8, change.Text("1.5"), `1.5`},
		{oidFloat8, change.Text("1e+300"), `1e+300`},
		{oidFloat4, change.Text("NaN"), `"NaN"`},
		{oidFloat8, change.Text("-Infinity"), `"-Infinity"`},
		{oidBool, change.Text("t"), `true`},
		{oidBool, change.Text("f"), `false`},
		{oidJSONB, change.Text(`{"a": [1, "x"]}`), `{"a":[1,"x"]}`},
		{oidJSON, change.Text("{\n \"b\" : null}"), `{"b":null}`},
		{25, change.Text("say \"hi\"\n\t\\"), `"say \"hi\"\n\t\\"`},
		{1007, change.Text("{1,2,3}"), `"{1,2,3}"`},
		{17, &change.Value{Format: change.FormatBinary, Data: []byte{0, 1, 2}}, `{"base64":"AAEC"}`},
		{25, &change.Value{Format: change.FormatText, Data: []byte{0xff, 'a'}}, `{"base64":"/2E="}`},
		{25, nil, `null`},
	}
	for _, tt := range tests {
		if got := string(appendValue(nil, tt.oid, tt.v)); got != tt.want {
			t.Errorf("appendValue(%d, %v) = %s, want %s", tt.oid, tt.v, got, tt.want)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := Cursor{Seq: 1 << 40, Index: 255, TxEnd: true, ID: change.ID{LSN: 0xFFFFFFFF00000001, Pos: 1 << 31}}
	s := c.Encode("shop")
	got, err := ParseCursor("shop", s)
	if err != nil || got != c {
		t.Fatalf("ParseCursor(Encode(%+v)) = %+v, %v", c, got, err)
	}
	if _, err := ParseCursor("other", s); err == nil {
		t.Fatalf("cursor of shop accepted for other")
	}
	b := []byte(s)
	b[5] ^= 1
	if _, err := ParseCursor("shop", string(b)); err == nil {
		t.Fatalf("garbled cursor %s accepted", b)
	}
}
