package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/pgtide/pgtide/internal/change"
)

// This file decodes the pgoutput logical replication protocol, version 1:
// https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
//
// pgtide decodes the messages itself instead of using pglogrepl's parser
// so that every read is bounds-checked (a malformed message is an error,
// never a panic) and tuple values are sliced from one buffer instead of
// being copied column by column.

// pgEpoch is the zero of PostgreSQL timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// errShort reports a message that ends before its fields do.
var errShort = errors.New("message too short")

// msgBegin, msgCommit, ... are the pgoutput message types pgtide handles.
const (
	msgBegin    = 'B'
	msgCommit   = 'C'
	msgOrigin   = 'O'
	msgRelation = 'R'
	msgType     = 'Y'
	msgInsert   = 'I'
	msgUpdate   = 'U'
	msgDelete   = 'D'
	msgTruncate = 'T'
	msgMessage  = 'M'
)

// truncate option bits of a Truncate message.
const (
	truncateCascade         = 1
	truncateRestartIdentity = 2
)

// beginMsg is a decoded Begin message.
type beginMsg struct {
	FinalLSN   change.LSN
	CommitTime time.Time
	Xid        uint32
}

// commitMsg is a decoded Commit message.
type commitMsg struct {
	CommitLSN change.LSN
	EndLSN    change.LSN
	Time      time.Time
}

// relationMsg is a decoded Relation message.
type relationMsg struct {
	ID              uint32
	Namespace, Name string
	ReplicaIdentity byte
	Columns         []relColumn
}

// relColumn is one column of a Relation message.
type relColumn struct {
	Key    bool
	Name   string
	TypeID uint32
	TypMod int32
}

// tupleKind marks which tuple an Update or Delete carries as its old row.
const (
	oldNone = 0
	oldKey  = 'K'
	oldFull = 'O'
)

// rowMsg is a decoded Insert, Update or Delete message.
type rowMsg struct {
	RelID   uint32
	OldKind byte
	Old     []*change.Value
	New     []*change.Value
	// Unchanged holds the indexes of unchanged TOAST columns of New.
	Unchanged []int
}

// truncateMsg is a decoded Truncate message.
type truncateMsg struct {
	Cascade, RestartIdentity bool
	RelIDs                   []uint32
}

// reader consumes a message body with bounds checks. The first failed read
// sets err and every later read returns zero values.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", what, errShort)
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil || len(r.buf) < 1 {
		r.fail(what)
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) uint16(what string) uint16 {
	if r.err != nil || len(r.buf) < 2 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint16(r.buf)
	r.buf = r.buf[2:]
	return v
}

func (r *reader) uint32(what string) uint32 {
	if r.err != nil || len(r.buf) < 4 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint32(r.buf)
	r.buf = r.buf[4:]
	return v
}

func (r *reader) uint64(what string) uint64 {
	if r.err != nil || len(r.buf) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.buf)
	r.buf = r.buf[8:]
	return v
}

func (r *reader) time(what string) time.Time {
	us := int64(r.uint64(what))
	return pgEpoch.Add(time.Duration(us) * time.Microsecond)
}

// string reads a NUL-terminated string.
func (r *reader) string(what string) string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.buf {
		if c == 0 {
			s := string(r.buf[:i])
			r.buf = r.buf[i+1:]
			return s
		}
	}
	r.err = fmt.Errorf("%s: missing string terminator", what)
	return ""
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil || n < 0 || len(r.buf) < n {
		r.fail(what)
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

// done returns the first error, or an error when bytes are left over.
func (r *reader) done(msg string) error {
	if r.err == nil && len(r.buf) > 0 {
		r.err = fmt.Errorf("%d unexpected trailing bytes", len(r.buf))
	}
	if r.err != nil {
		return fmt.Errorf("decode pgoutput %s message: %w", msg, r.err)
	}
	return nil
}

func decodeBegin(body []byte) (beginMsg, error) {
	r := reader{buf: body}
	m := beginMsg{
		FinalLSN:   change.LSN(r.uint64("final lsn")),
		CommitTime: r.time("commit time"),
		Xid:        r.uint32("xid"),
	}
	return m, r.done("Begin")
}

func decodeCommit(body []byte) (commitMsg, error) {
	r := reader{buf: body}
	r.byte("flags")
	m := commitMsg{
		CommitLSN: change.LSN(r.uint64("commit lsn")),
		EndLSN:    change.LSN(r.uint64("end lsn")),
		Time:      r.time("commit time"),
	}
	return m, r.done("Commit")
}

func decodeRelation(body []byte) (*relationMsg, error) {
	r := reader{buf: body}
	m := &relationMsg{
		ID:              r.uint32("relation id"),
		Namespace:       r.string("namespace"),
		Name:            r.string("relation name"),
		ReplicaIdentity: r.byte("replica identity"),
	}
	n := int(r.uint16("column count"))
	if r.err == nil && n > len(r.buf) {
		// Every column needs at least 10 bytes; refuse before allocating.
		r.fail("columns")
	}
	if r.err == nil {
		m.Columns = make([]relColumn, n)
	}
	for i := range m.Columns {
		m.Columns[i] = relColumn{
			Key:    r.byte("column flags")&1 == 1,
			Name:   r.string("column name"),
			TypeID: r.uint32("column type"),
			TypMod: int32(r.uint32("column type modifier")),
		}
	}
	return m, r.done("Relation")
}

// tuple reads TupleData. Values alias the message buffer.
func (r *reader) tuple() (vals []*change.Value, unchanged []int) {
	n := int(r.uint16("tuple column count"))
	if r.err != nil || n > len(r.buf) {
		r.fail("tuple columns")
		return nil, nil
	}
	vals = make([]*change.Value, n)
	store := make([]change.Value, n)
	for i := 0; i < n && r.err == nil; i++ {
		switch kind := r.byte("column kind"); kind {
		case 'n':
		case 'u':
			unchanged = append(unchanged, i)
		case 't', 'b':
			size := r.uint32("value length")
			if size > 1<<30 {
				r.err = fmt.Errorf("value length %d exceeds 1 GiB", size)
				break
			}
			store[i] = change.Value{Format: change.Format(kind), Data: r.bytes(int(size), "value")}
			vals[i] = &store[i]
		default:
			r.err = fmt.Errorf("unknown tuple column kind %q", kind)
		}
	}
	return vals, unchanged
}

func decodeInsert(body []byte) (rowMsg, error) {
	r := reader{buf: body}
	m := rowMsg{RelID: r.uint32("relation id")}
	if k := r.byte("tuple marker"); r.err == nil && k != 'N' {
		r.err = fmt.Errorf("want new tuple marker 'N', got %q", k)
	}
	m.New, m.Unchanged = r.tuple()
	return m, r.done("Insert")
}

func decodeUpdate(body []byte) (rowMsg, error) {
	r := reader{buf: body}
	m := rowMsg{RelID: r.uint32("relation id")}
	k := r.byte("tuple marker")
	if k == oldKey || k == oldFull {
		m.OldKind = k
		m.Old, _ = r.tuple()
		k = r.byte("tuple marker")
	}
	if r.err == nil && k != 'N' {
		r.err = fmt.Errorf("want new tuple marker 'N', got %q", k)
	}
	m.New, m.Unchanged = r.tuple()
	return m, r.done("Update")
}

func decodeDelete(body []byte) (rowMsg, error) {
	r := reader{buf: body}
	m := rowMsg{RelID: r.uint32("relation id")}
	k := r.byte("tuple marker")
	if r.err == nil && k != oldKey && k != oldFull {
		r.err = fmt.Errorf("want old tuple marker 'K' or 'O', got %q", k)
	}
	m.OldKind = k
	m.Old, _ = r.tuple()
	return m, r.done("Delete")
}

func decodeTruncate(body []byte) (truncateMsg, error) {
	r := reader{buf: body}
	n := r.uint32("relation count")
	opts := r.byte("options")
	m := truncateMsg{
		Cascade:         opts&truncateCascade != 0,
		RestartIdentity: opts&truncateRestartIdentity != 0,
	}
	if r.err == nil && uint64(n)*4 != uint64(len(r.buf)) {
		r.err = fmt.Errorf("%d relation ids announced, %d bytes follow", n, len(r.buf))
	}
	if r.err == nil {
		m.RelIDs = make([]uint32, n)
	}
	for i := range m.RelIDs {
		m.RelIDs[i] = r.uint32("relation id")
	}
	return m, r.done("Truncate")
}

// logicalMsg is a decoded logical decoding Message.
type logicalMsg struct {
	Transactional bool
	Prefix        string
	Content       []byte
}

func decodeMessage(body []byte) (logicalMsg, error) {
	r := reader{buf: body}
	m := logicalMsg{Transactional: r.byte("flags")&1 == 1}
	r.uint64("lsn")
	m.Prefix = r.string("prefix")
	n := r.uint32("content length")
	m.Content = r.bytes(int(n), "content")
	return m, r.done("Message")
}
