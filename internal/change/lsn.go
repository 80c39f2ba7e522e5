package change

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL write-ahead log position.
type LSN uint64

// String formats the LSN the way PostgreSQL does, e.g. "0/16B3748".
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// ParseLSN parses the PostgreSQL text form of an LSN ("16/B374D848").
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("invalid LSN %q: want two hex numbers separated by '/', e.g. \"0/16B3748\"", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q: high part: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid LSN %q: low part: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// ID identifies a record: the commit LSN of its transaction and its
// position inside that transaction (starting at 1). IDs are stable across
// restarts of capture and order records exactly as the source committed
// them.
type ID struct {
	LSN LSN
	Pos uint32
}

// String formats the ID as "<lsn>:<pos>", e.g. "0/16B3748:3".
func (id ID) String() string {
	return id.LSN.String() + ":" + strconv.FormatUint(uint64(id.Pos), 10)
}

// Less reports whether id comes before other in commit order.
func (id ID) Less(other ID) bool {
	if id.LSN != other.LSN {
		return id.LSN < other.LSN
	}
	return id.Pos < other.Pos
}

// ParseID parses the form written by [ID.String].
func ParseID(s string) (ID, error) {
	l, p, ok := strings.Cut(s, ":")
	if !ok {
		return ID{}, fmt.Errorf("invalid record id %q: want \"<lsn>:<pos>\"", s)
	}
	lsn, err := ParseLSN(l)
	if err != nil {
		return ID{}, fmt.Errorf("invalid record id %q: %w", s, err)
	}
	pos, err := strconv.ParseUint(p, 10, 32)
	if err != nil {
		return ID{}, fmt.Errorf("invalid record id %q: position: %w", s, err)
	}
	return ID{LSN: lsn, Pos: uint32(pos)}, nil
}
