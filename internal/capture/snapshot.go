package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pgtide/pgtide/internal/change"
)

// SnapshotOptions configure the initial snapshot: the rows that exist when
// a source is first set up, written to the log as read records before the
// first streamed change.
type SnapshotOptions struct {
	// Enabled turns the initial snapshot on. It takes effect when capture
	// creates the slot; a slot that exists already is not snapshotted.
	Enabled bool
	// Tables are globs (as Options.Tables) limiting which captured tables
	// are snapshotted; empty means all of them.
	Tables []string
	// Workers is the number of connections reading chunks in parallel (2).
	Workers int
	// ChunkRows is the estimated number of rows per chunk (250,000).
	ChunkRows int
	// RowsPerSecond throttles reading (0: unlimited).
	RowsPerSecond int
}

func (o *SnapshotOptions) setDefaults() {
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = 250_000
	}
}

// Snapshot plan states, stored in the log's state bucket.
const (
	snapPending = "pending" // the slot is about to be created
	snapRunning = "running" // chunks are being read
	snapDone    = "done"
)

// snapshotPlan is the durable description of a source's initial snapshot.
// Progress inside it is not stored here but read back from the headers of
// the snapshot's own messages in the log, which makes it exact: what the
// log holds is what was done.
type snapshotPlan struct {
	State string `json:"state"`
	// StartSeq is the first log sequence the snapshot may have written.
	StartSeq uint64      `json:"start_seq"`
	Tables   []tablePlan `json:"tables,omitempty"`
	// Resumes record the parts read again under a later snapshot after
	// capture was interrupted; the stream skips their older changes.
	Resumes   []resumeRange `json:"resumes,omitempty"`
	Estimated int64         `json:"estimated_rows"`
	Started   time.Time     `json:"started"`
	Finished  time.Time     `json:"finished,omitzero"`
}

// tablePlan is one table of the snapshot and its chunks.
type tablePlan struct {
	Schema   string      `json:"schema"`
	Table    string      `json:"table"`
	Key      []string    `json:"key,omitempty"` // empty: keyless, one chunk
	KeyTypes []string    `json:"key_types,omitempty"`
	Chunks   []chunkPlan `json:"chunks"`
}

// chunkPlan is a key range (lo, hi]; nil bounds are open.
type chunkPlan struct {
	Lo []string `json:"lo,omitempty"`
	Hi []string `json:"hi,omitempty"`
}

// resumeRange says that rows of a table in (Lo, Hi] (or the whole table)
// were read under the snapshot at LSN, so streamed changes of those rows
// committed at or before LSN are already in the snapshot and are skipped.
type resumeRange struct {
	Table int        `json:"table"`
	Whole bool       `json:"whole,omitempty"`
	Lo    []string   `json:"lo,omitempty"`
	Hi    []string   `json:"hi,omitempty"`
	LSN   change.LSN `json:"lsn"`
}

// chunkRef names chunk Chunk of table Table of a plan.
type chunkRef struct{ Table, Chunk int }

// chunkProgress is what the log shows of a chunk.
type chunkProgress struct {
	LastKey []string
	Rows    bool
	Done    bool
}

func snapshotStateKey(source string) string { return "snapshot." + source }

func loadPlan(ctx context.Context, s *session) (*snapshotPlan, error) {
	data, err := s.opts.Log.GetState(ctx, snapshotStateKey(s.opts.Source))
	if err != nil || data == nil {
		return nil, err
	}
	var p snapshotPlan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, permanent("snapshot state of source %q is unreadable: %w", s.opts.Source, err)
	}
	return &p, nil
}

func savePlan(ctx context.Context, s *session, p *snapshotPlan) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := s.opts.Log.PutState(ctx, snapshotStateKey(s.opts.Source), data); err != nil {
		return fmt.Errorf("save snapshot state: %w", err)
	}
	return nil
}

// Headers on snapshot messages, read back to resume exactly.
const (
	hdrSnapChunk = "Pgtide-Snapshot-Chunk" // "<table>.<chunk>"
	hdrSnapKey   = "Pgtide-Snapshot-Key"   // JSON array: key of the message's last row
	hdrSnapDone  = "Pgtide-Snapshot-Done"  // "1" on a chunk's final message
)
