package main

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// pollInterval is how often a child reads the log's tail to see whether
// its drain is done.
const pollInterval = 5 * time.Millisecond

// slotPollInterval is how often waitSlot reads the slot. Capture confirms
// once per status interval (1 s), so polling faster gains nothing and
// costs the capture process CPU.
const slotPollInterval = 50 * time.Millisecond

// waitFor polls the end of the log until it is the last batch of the
// transaction committed at commit, and returns its sequence. It fails
// when capture stops first.
func waitFor(ctx context.Context, lg *changelog.Log, commit change.LSN, done <-chan error) (uint64, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()

	var seen uint64
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case err := <-done:
			return 0, fmt.Errorf("capture stopped before the end of the workload: %v", err)
		case <-t.C:
		}

		m, err := lg.Last(ctx, source)
		if err != nil || m == nil || m.Seq == seen {
			// The stream appears with capture's first session.
			continue
		}
		seen = m.Seq

		// Decoding a whole batch costs this process as much CPU as
		// capturing a few hundred rows: read the LSN from the head of
		// the message first and decode only the candidate.
		lsn, ok := batchLSN(m.Data)
		if ok && lsn > commit {
			return 0, fmt.Errorf("log went past commit %s to %s without its last batch", commit, lsn)
		}
		if ok && lsn < commit {
			continue
		}
		b, err := change.DecodeBatch(m.Data)
		if err != nil {
			return 0, fmt.Errorf("decode message %d: %w", m.Seq, err)
		}
		if b.LSN == commit && b.Last {
			return m.Seq, nil
		}
		if b.LSN > commit {
			return 0, fmt.Errorf("log went past commit %s to %s without its last batch", commit, b.LSN)
		}
	}
}

// batchLSN reads the "lsn" field from the head of an encoded batch, where
// the encoder puts it. ok is false when it is not found there.
func batchLSN(data []byte) (lsn change.LSN, ok bool) {
	const key = `"lsn":"`
	head := data[:min(len(data), 256)]
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := head[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, false
	}
	lsn, err := change.ParseLSN(string(rest[:j]))
	return lsn, err == nil
}

// waitSlot polls the slot until capture has confirmed the end of the
// final transaction, which it does only once the log has stored all of
// it, then checks the log's last message once. Unlike waitFor it does not
// read the log while capture writes: the file store keeps the write
// cache of a message block for its cache expiry (10 s) after the block's
// last read, so a reader of the tail raises the memory being measured.
// Capture reports its position every StatusInterval (1 s), so the drain
// time measured this way is up to that much too long.
func waitSlot(ctx context.Context, lg *changelog.Log, s childSpec, done <-chan error) (uint64, error) {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return 0, fmt.Errorf("connect to watch slot %s: %w", s.Slot, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	t := time.NewTicker(slotPollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case err := <-done:
			return 0, fmt.Errorf("capture stopped before the end of the workload: %v", err)
		case <-t.C:
		}

		var reached bool
		err := conn.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn >= $1::text::pg_lsn, false)
			FROM pg_replication_slots WHERE slot_name = $2`, s.EndLSN.String(), s.Slot).Scan(&reached)
		if err != nil {
			return 0, fmt.Errorf("read slot %s: %w", s.Slot, err)
		}
		if reached {
			break
		}
	}

	m, err := lg.Last(ctx, source)
	if err != nil || m == nil {
		return 0, fmt.Errorf("slot %s confirmed %s but the log has no last message: %v", s.Slot, s.EndLSN, err)
	}
	b, err := change.DecodeBatch(m.Data)
	if err != nil {
		return 0, fmt.Errorf("decode message %d: %w", m.Seq, err)
	}
	if b.LSN != s.CommitLSN || !b.Last {
		return 0, fmt.Errorf("slot %s confirmed %s but the log ends at %s (last: %v), want %s",
			s.Slot, s.EndLSN, b.LastID(), b.Last, s.CommitLSN)
	}
	return m.Seq, nil
}
