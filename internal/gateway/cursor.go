package gateway

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"

	"github.com/pgtide/pgtide/internal/change"
)

// A cursor names a position in the log of one source: just after record
// Index of the message with stream sequence Seq. On the wire it is
//
//	base64url( version | flags | uvarint seq | uvarint index |
//	           [uvarint lsn | uvarint pos] | crc32c(source, previous bytes) )
//
// The checksum covers the source name, so a garbled cursor, or one issued
// for another source, is rejected instead of read as another position.
// The record ID, when present, is checked against the log on resume, so a
// cursor of a log that was recreated since is rejected too.

const cursorVersion = 1

// Cursor flags.
const (
	// cursorEnd: the position is after the whole message Seq, so reading
	// resumes at Seq+1.
	cursorEnd = 1 << iota
	// cursorTxEnd: the record at the position ended its transaction.
	cursorTxEnd
	// cursorHasID: the cursor carries the record's ID.
	cursorHasID
	cursorFlags = cursorEnd | cursorTxEnd | cursorHasID
)

// maxCursorLen bounds the text of a cursor a client may send.
const maxCursorLen = 128

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Cursor is a decoded cursor.
type Cursor struct {
	Seq   uint64    // stream sequence of the message
	Index uint32    // record index inside the message
	End   bool      // the position is after the whole message
	TxEnd bool      // the record ended its transaction
	ID    change.ID // the record's ID; zero when unknown
}

// next returns the first sequence a reader resuming at c must read.
func (c Cursor) next() uint64 {
	if c.End {
		return c.Seq + 1
	}
	return c.Seq
}

// Encode returns the cursor's text form for source.
func (c Cursor) Encode(source string) string {
	var buf [48]byte
	b := buf[:0]
	flags := byte(0)
	if c.End {
		flags |= cursorEnd
	}
	if c.TxEnd {
		flags |= cursorTxEnd
	}
	if c.ID != (change.ID{}) {
		flags |= cursorHasID
	}
	b = append(b, cursorVersion, flags)
	b = binary.AppendUvarint(b, c.Seq)
	b = binary.AppendUvarint(b, uint64(c.Index))
	if flags&cursorHasID != 0 {
		b = binary.AppendUvarint(b, uint64(c.ID.LSN))
		b = binary.AppendUvarint(b, uint64(c.ID.Pos))
	}
	sum := crc32.Update(crc32.Checksum([]byte(source), castagnoli), castagnoli, b)
	b = binary.BigEndian.AppendUint32(b, sum)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes the text form of a cursor of source. The error is an
// *Error with code invalid_cursor that says what is wrong.
func ParseCursor(source, s string) (Cursor, error) {
	var c Cursor
	if s == "" {
		return c, errorf(CodeInvalidCursor, "empty cursor")
	}
	if len(s) > maxCursorLen {
		return c, errorf(CodeInvalidCursor, "cursor is %d characters long, at most %d expected", len(s), maxCursorLen)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, errorf(CodeInvalidCursor, "cursor is not base64url: %v", err)
	}
	if len(b) < 2+2+4 {
		return c, errorf(CodeInvalidCursor, "cursor is truncated (%d bytes)", len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if body[0] != cursorVersion {
		return c, errorf(CodeInvalidCursor, "cursor version %d is not supported", body[0])
	}
	if crc32.Update(crc32.Checksum([]byte(source), castagnoli), castagnoli, body) != sum {
		return c, errorf(CodeInvalidCursor, "cursor checksum mismatch: the cursor is garbled or belongs to a source other than %q", source)
	}

	flags := body[1]
	if flags&^cursorFlags != 0 {
		return c, errorf(CodeInvalidCursor, "cursor has unknown flags %#x", flags)
	}
	rest := body[2:]
	fields := []uint64{0, 0}
	if flags&cursorHasID != 0 {
		fields = append(fields, 0, 0)
	}
	for i := range fields {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return c, errorf(CodeInvalidCursor, "cursor field %d is malformed", i+1)
		}
		fields[i], rest = v, rest[n:]
	}
	if len(rest) != 0 {
		return c, errorf(CodeInvalidCursor, "cursor has %d trailing bytes", len(rest))
	}
	if fields[1] > 1<<31 {
		return c, errorf(CodeInvalidCursor, "cursor index %d is out of range", fields[1])
	}

	c = Cursor{
		Seq:   fields[0],
		Index: uint32(fields[1]),
		End:   flags&cursorEnd != 0,
		TxEnd: flags&cursorTxEnd != 0,
	}
	if flags&cursorHasID != 0 {
		if fields[3] > 1<<32-1 || fields[2] == 0 {
			return c, errorf(CodeInvalidCursor, "cursor record ID is out of range")
		}
		c.ID = change.ID{LSN: change.LSN(fields[2]), Pos: uint32(fields[3])}
	}
	return c, nil
}
