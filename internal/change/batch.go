package change

import "time"

// Row is the per-record part of a [Batch].
type Row struct {
	New        []*Value
	Old        []*Value
	OldKeyOnly bool
	Unchanged  []string
}

// Batch is the unit stored in one log message: consecutive records of one
// transaction and one table with the same operation. Record i of the batch
// has position FirstPos+i. Only the final record of a batch can be the last
// one of its transaction.
type Batch struct {
	Source     string
	LSN        LSN
	FirstPos   uint32
	Xid        uint32
	CommitTime time.Time
	Schema     string
	Table      string
	Op         Op
	Columns    []Column
	Rows       []Row
	// Last is true when the batch ends its transaction.
	Last            bool
	Cascade         bool
	RestartIdentity bool
	DDL             *DDL
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int { return len(b.Rows) }

// FirstID returns the ID of the batch's first record.
func (b *Batch) FirstID() ID { return ID{LSN: b.LSN, Pos: b.FirstPos} }

// LastID returns the ID of the batch's final record.
func (b *Batch) LastID() ID {
	return ID{LSN: b.LSN, Pos: b.FirstPos + uint32(len(b.Rows)) - 1}
}

// Record returns record i of the batch. The record shares slices with the
// batch.
func (b *Batch) Record(i int) Record {
	r := b.Rows[i]
	return Record{
		Source:          b.Source,
		ID:              ID{LSN: b.LSN, Pos: b.FirstPos + uint32(i)},
		Xid:             b.Xid,
		CommitTime:      b.CommitTime,
		Schema:          b.Schema,
		Table:           b.Table,
		Op:              b.Op,
		Columns:         b.Columns,
		New:             r.New,
		Old:             r.Old,
		OldKeyOnly:      r.OldKeyOnly,
		Unchanged:       r.Unchanged,
		Last:            b.Last && i == len(b.Rows)-1,
		Cascade:         b.Cascade,
		RestartIdentity: b.RestartIdentity,
		DDL:             b.DDL,
	}
}

// Records returns every record of the batch in order.
func (b *Batch) Records() []Record {
	out := make([]Record, len(b.Rows))
	for i := range b.Rows {
		out[i] = b.Record(i)
	}
	return out
}
