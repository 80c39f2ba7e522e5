package change

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// randomBatch builds a batch with awkward names and values: quotes,
// backslashes, control characters, non-UTF-8 text, binary values, NULLs,
// old rows, unchanged TOAST lists and every flag.
func randomBatch(rng *rand.Rand) *Batch {
	str := func() string {
		const alphabet = "ab\"\\\n\r\t\x01\x1f/✓日 "
		runes := []rune(alphabet)
		n := rng.IntN(8)
		out := make([]rune, n)
		for i := range out {
			out[i] = runes[rng.IntN(len(runes))]
		}
		return string(out)
	}
	val := func() *Value {
		switch rng.IntN(5) {
		case 0:
			return nil
		case 1:
			return &Value{Format: FormatBinary, Data: []byte{0, 1, 0xff, byte(rng.IntN(256))}}
		case 2:
			return &Value{Format: FormatText, Data: []byte{'x', 0xff, 0xfe}}
		default:
			return Text(str())
		}
	}
	ops := []Op{OpInsert, OpUpdate, OpDelete, OpRead, OpTruncate}
	b := &Batch{
		Source: "src", LSN: LSN(rng.Uint64() >> 8), FirstPos: 1 + uint32(rng.IntN(1000)),
		Xid: rng.Uint32(), CommitTime: time.Unix(int64(rng.IntN(2e9)), int64(rng.IntN(1e9))).UTC(),
		Schema: str(), Table: str(), Op: ops[rng.IntN(len(ops))],
		Last: rng.IntN(2) == 0, Cascade: rng.IntN(3) == 0, RestartIdentity: rng.IntN(3) == 0,
	}
	ncols := rng.IntN(5)
	for i := range ncols {
		b.Columns = append(b.Columns, Column{Name: fmt.Sprintf("c%d%s", i, str()), Type: str(),
			OID: rng.Uint32(), Key: rng.IntN(2) == 0})
	}
	for range 1 + rng.IntN(4) {
		var r Row
		if rng.IntN(4) > 0 {
			r.New = make([]*Value, ncols)
			for i := range r.New {
				r.New[i] = val()
			}
		}
		if rng.IntN(2) == 0 {
			r.Old = make([]*Value, ncols)
			for i := range r.Old {
				r.Old[i] = val()
			}
			r.OldKeyOnly = rng.IntN(2) == 0
		}
		if rng.IntN(3) == 0 {
			r.Unchanged = []string{str(), "u"}
		}
		b.Rows = append(b.Rows, r)
	}
	return b
}

// TestFastDecodeMatchesChange checks the fast parser against
// decodeJSON on random batches: it must accept the encoder's
// output and decode it to the same batch.
func TestFastDecodeMatchesChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		data := randomBatch(rng).AppendJSON(nil)
		want, err := decodeJSON(data)
		if err != nil {
			t.Fatalf("batch %d: decodeJSON: %v", i, err)
		}
		got, ok := fastDecode(data)
		if !ok {
			t.Fatalf("batch %d: fastDecode refused the encoder's output:\n%s", i, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("batch %d: fastDecode(%s)\n= %+v\nwant %+v", i, data, got, want)
		}
	}
}

// FuzzFastDecode: whatever the bytes, a batch the fast parser accepts is
// one decodeJSON accepts and decodes identically.
func FuzzFastDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		f.Add(randomBatch(rng).AppendJSON(nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := fastDecode(data)
		if !ok {
			return
		}
		want, err := decodeJSON(data)
		if err != nil {
			t.Fatalf("fastDecode accepted what decodeJSON rejects (%v): %q", err, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fastDecode(%q)\n= %+v\nwant %+v", data, got, want)
		}
	})
}
