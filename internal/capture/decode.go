package capture

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/nats-io/nats.go"

	"github.com/pgtide/pgtide/internal/change"
)

// decode handles one pgoutput message. data is owned by the session:
// decoded values alias it until their batch is published.
func (s *session) decode(ctx context.Context, data []byte) error {
	body := data[1:]
	switch data[0] {
	case msgBegin:
		m, err := decodeBegin(body)
		if err != nil {
			return err
		}
		s.tx = txState{lsn: m.FinalLSN, xid: m.Xid, commitTime: m.CommitTime}
		s.inTx = true
	case msgCommit:
		m, err := decodeCommit(body)
		if err != nil {
			return err
		}
		return s.commit(ctx, m)
	case msgRelation:
		m, err := decodeRelation(body)
		if err != nil {
			return err
		}
		rel, err := newRelation(ctx, s.opts.Source, m, s.types)
		if err != nil {
			return err
		}
		s.rels[m.ID] = rel
		s.windows.invalidate(rel.schema, rel.table)
	case msgInsert, msgUpdate, msgDelete:
		return s.row(ctx, data[0], body)
	case msgTruncate:
		m, err := decodeTruncate(body)
		if err != nil {
			return err
		}
		return s.truncate(ctx, m)
	case msgMessage:
		m, err := decodeMessage(body)
		if err != nil {
			return err
		}
		return s.watermark(ctx, m)
	case msgType, msgOrigin:
		// Type names come from the catalog; origins are not part of the
		// change stream.
	default:
		return fmt.Errorf("unknown pgoutput message type %q", data[0])
	}
	return nil
}

func (s *session) relation(id uint32) (*relation, error) {
	rel := s.rels[id]
	if rel == nil {
		return nil, fmt.Errorf("change for relation %d before its Relation message", id)
	}
	return rel, nil
}

// nextID advances the position in the transaction and reports whether the
// record is new, i.e. not already in the log.
func (s *session) nextID() bool {
	if !s.inTx {
		return false
	}
	s.tx.pos++
	return s.lastID.Less(change.ID{LSN: s.tx.lsn, Pos: s.tx.pos})
}

var opOf = map[byte]change.Op{msgInsert: change.OpInsert, msgUpdate: change.OpUpdate, msgDelete: change.OpDelete}

func (s *session) row(ctx context.Context, kind byte, body []byte) error {
	var m rowMsg
	var err error
	switch kind {
	case msgInsert:
		m, err = decodeInsert(body)
	case msgUpdate:
		m, err = decodeUpdate(body)
	default:
		m, err = decodeDelete(body)
	}
	if err != nil {
		return err
	}
	rel, err := s.relation(m.RelID)
	if err != nil {
		return err
	}
	if rel.ddlLog {
		return s.ddl(ctx, rel, kind, m)
	}
	if err := checkWidth(rel, m); err != nil {
		return err
	}
	row := change.Row{New: m.New}
	if m.OldKind != oldNone {
		row.Old, row.OldKeyOnly = m.Old, m.OldKind == oldKey
	}
	for _, i := range m.Unchanged {
		row.Unchanged = append(row.Unchanged, rel.columns[i].Name)
	}
	s.windows.noteChange(rel, &row)
	op, err := s.resumedOp(ctx, rel, opOf[kind], &row)
	if op == "" || err != nil {
		return err
	}
	switch {
	case op == change.OpInsert && kind == msgUpdate:
		row.Old, row.OldKeyOnly = nil, false
	case op == change.OpDelete && kind == msgUpdate:
		row.New, row.Unchanged = nil, nil
	}
	if !s.nextID() {
		return nil
	}
	return s.add(ctx, rel, op, row, rowBytes(row))
}

func checkWidth(rel *relation, m rowMsg) error {
	if (m.New != nil && len(m.New) != len(rel.columns)) || (m.Old != nil && len(m.Old) != len(rel.columns)) {
		return fmt.Errorf("row of %s.%s has a different column count than its Relation message (%d)",
			rel.schema, rel.table, len(rel.columns))
	}
	return nil
}

func rowBytes(r change.Row) int {
	n := 16
	for _, v := range r.New {
		n += 8
		if v != nil {
			n += len(v.Data)
		}
	}
	for _, v := range r.Old {
		n += 8
		if v != nil {
			n += len(v.Data)
		}
	}
	return n
}

// add appends a record to the open batch, first publishing the batch when
// the record does not belong to it or it is full.
func (s *session) add(ctx context.Context, rel *relation, op change.Op, row change.Row, size int) error {
	b := s.batch
	if b != nil && (b.rel != rel || b.Op != op || len(b.Rows) >= s.opts.BatchRows ||
		b.bytes+size > s.opts.BatchBytes) {
		if err := s.flush(ctx, false, 0); err != nil {
			return err
		}
		b = nil
	}
	if b == nil {
		b = &openBatch{rel: rel, Batch: change.Batch{
			Source: s.opts.Source, LSN: s.tx.lsn, FirstPos: s.tx.pos, Xid: s.tx.xid,
			CommitTime: s.tx.commitTime, Schema: rel.schema, Table: rel.table, Op: op,
			Columns: rel.columns,
		}}
		s.batch = b
	}
	b.Rows = append(b.Rows, row)
	b.bytes += size
	return nil
}

// flush publishes the open batch. endLSN is the transaction's end when
// the batch is its last.
func (s *session) flush(ctx context.Context, last bool, endLSN change.LSN) error {
	b := s.batch
	s.batch = nil
	if err := s.publishBatch(ctx, b, last, endLSN, nil); err != nil {
		return err
	}
	s.tx.published++
	return nil
}

// publishBatch encodes and publishes one batch; the tracker learns endLSN
// once the log acknowledged it.
func (s *session) publishBatch(ctx context.Context, b *openBatch, last bool, endLSN change.LSN, hdr nats.Header) error {
	b.Last = last
	payload := b.AppendJSON(make([]byte, 0, b.bytes+len(b.Rows)*16+512))
	if len(payload) > s.opts.MaxMessageBytes {
		return permanent("a change batch of %s.%s at %s is %d bytes, over the log's max_payload of %d: "+
			"raise nats.embedded.max_payload (up to 64MiB) or the external server's max_payload",
			b.Schema, b.Table, b.FirstID(), len(payload), s.opts.MaxMessageBytes)
	}
	s.track.willPublish()
	if err := s.pub.Publish(ctx, b.rel.subject, hdr, payload, uint64(endLSN)); err != nil {
		s.track.unpublish()
		return fmt.Errorf("publish batch %s: %w", b.FirstID(), err)
	}
	s.c.m.messages.Inc()
	s.c.m.bytes.Add(float64(len(payload)))
	s.c.m.records[string(b.Op)].Add(float64(len(b.Rows)))
	return nil
}

func (s *session) commit(ctx context.Context, m commitMsg) error {
	if !s.inTx {
		return fmt.Errorf("commit %s without a begin", m.CommitLSN)
	}
	if m.CommitLSN != s.tx.lsn {
		return fmt.Errorf("commit LSN %s differs from the begin's final LSN %s", m.CommitLSN, s.tx.lsn)
	}
	if s.batch != nil {
		if err := s.flush(ctx, true, m.EndLSN); err != nil {
			return err
		}
	}
	if s.tx.published == 0 {
		s.track.idle(m.EndLSN, time.Now())
	}
	s.windows.committed()
	s.inTx = false
	s.lastCommit = s.tx.commitTime
	s.c.m.transactions.Inc()
	return nil
}

func (s *session) truncate(ctx context.Context, m truncateMsg) error {
	for _, id := range m.RelIDs {
		rel, err := s.relation(id)
		if err != nil {
			return err
		}
		if rel.ddlLog {
			continue
		}
		s.windows.invalidate(rel.schema, rel.table)
		if op, err := s.resumedOp(ctx, rel, change.OpTruncate, nil); err != nil {
			return err
		} else if op == "" {
			continue
		}
		if !s.nextID() {
			continue
		}
		// Each truncated table is its own batch.
		if s.batch != nil {
			if err := s.flush(ctx, false, 0); err != nil {
				return err
			}
		}
		if err := s.add(ctx, rel, change.OpTruncate, change.Row{}, 16); err != nil {
			return err
		}
		s.batch.Cascade, s.batch.RestartIdentity = m.Cascade, m.RestartIdentity
	}
	return nil
}

// typeMap decodes the ddl_log's text[] column in either format.
var typeMap = pgtype.NewMap()

// ddl turns an insert into pgtide.ddl_log into a DDL record. Other
// changes of the DDL log (pruning it) are not part of the stream.
func (s *session) ddl(ctx context.Context, rel *relation, kind byte, m rowMsg) error {
	if kind != msgInsert || len(m.New) != len(rel.columns) || !s.nextID() {
		return nil
	}
	text := func(name string) string {
		if i := rel.column(name); i >= 0 && m.New[i] != nil {
			return string(m.New[i].Data)
		}
		return ""
	}
	d := &change.DDL{
		Tag:        text("tag"),
		Statement:  text("statement"),
		SearchPath: text("search_path"),
		User:       text("username"),
	}
	if i := rel.column("objects"); i >= 0 && m.New[i] != nil {
		v := m.New[i]
		format := int16(pgtype.TextFormatCode)
		if v.Format == change.FormatBinary {
			format = pgtype.BinaryFormatCode
		}
		if err := typeMap.Scan(pgtype.TextArrayOID, format, v.Data, &d.Objects); err != nil {
			return fmt.Errorf("decode ddl_log objects at %s: %w", s.tx.lsn, err)
		}
	}
	if s.batch != nil {
		if err := s.flush(ctx, false, 0); err != nil {
			return err
		}
	}
	if err := s.add(ctx, rel, change.OpDDL, change.Row{}, 64+len(d.Statement)); err != nil {
		return err
	}
	s.batch.DDL = d
	s.batch.Columns = nil
	return nil
}
