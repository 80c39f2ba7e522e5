package capture

import "github.com/pgtide/pgtide/internal/change"

// rowArena copies result rows (whose buffers the connection reuses) into
// a few large allocations per page instead of several per row: the
// page's values share Value and pointer slices and byte blocks. It also
// keeps the key of the last row added, in reused buffers. Not safe for
// concurrent use.
type rowArena struct {
	ncols  int
	format change.Format
	rows   int // expected rows per page, for sizing
	vals   []change.Value
	ptrs   []*change.Value
	buf    []byte
	key    [][]byte
}

// arenaBlock is the smallest byte block an arena allocates.
const arenaBlock = 64 << 10

func newRowArena(ncols, rows int, binary bool) *rowArena {
	a := &rowArena{ncols: ncols, rows: max(rows, 1), format: change.FormatText}
	if binary {
		a.format = change.FormatBinary
	}
	return a
}

// add copies one result row: the first ncols values are the row, the
// rest its key as text. It returns the row and its approximate size.
func (a *rowArena) add(vals [][]byte) (change.Row, int) {
	if len(a.ptrs)+a.ncols > cap(a.ptrs) {
		a.vals = make([]change.Value, 0, a.rows*a.ncols)
		a.ptrs = make([]*change.Value, 0, a.rows*a.ncols)
	}
	start := len(a.ptrs)
	size := 8 * a.ncols
	for i := range a.ncols {
		v := vals[i]
		if v == nil {
			a.ptrs = append(a.ptrs, nil)
			continue
		}
		a.vals = append(a.vals, change.Value{Format: a.format, Data: a.copy(v)})
		a.ptrs = append(a.ptrs, &a.vals[len(a.vals)-1])
		size += len(v)
	}
	// The connection reuses the key's memory: copy it into buffers that
	// the next row reuses in turn.
	keys := vals[a.ncols:]
	for len(a.key) < len(keys) {
		a.key = append(a.key, nil)
	}
	for i, k := range keys {
		a.key[i] = append(a.key[i][:0], k...)
	}
	a.key = a.key[:len(keys)]
	return change.Row{New: a.ptrs[start:len(a.ptrs):len(a.ptrs)]}, size
}

// copy stores b in the current block and returns the copy.
func (a *rowArena) copy(b []byte) []byte {
	if len(a.buf)+len(b) > cap(a.buf) {
		a.buf = make([]byte, 0, max(arenaBlock, len(b)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

// lastKey returns the key of the last row added.
func (a *rowArena) lastKey() []string {
	out := make([]string, len(a.key))
	for i, k := range a.key {
		out[i] = string(k)
	}
	return out
}
