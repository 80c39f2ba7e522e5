// Package apply keeps a target PostgreSQL database in step with a source
// by applying the source's change log, exactly once.
//
// # Exactly once
//
// The target holds the applier's progress in pgtide.apply_progress: per
// source, the ID (commit LSN and position) of the last applied record and
// the log sequence of its message. The row is written in the same target
// transaction as the data it covers, so after a crash the target holds
// either both or neither. On start the applier reads the row, reads the
// log from the next sequence and skips every record whose ID is not after
// the stored one. DDL replays inside the same transaction, since
// PostgreSQL DDL is transactional.
//
// # Reading
//
// The log is read in chunks of messages, decoded by a few workers while
// the target writes, with a bounded read-ahead. The decoder is a strict
// parser of the layout change.Batch.AppendJSON writes, falling back to
// change.DecodeBatch for anything else.
//
// # Transactions and groups
//
// A source transaction is never split. Consecutive source transactions are
// grouped into one target transaction until the group holds
// Options.GroupMaxTx transactions or Options.GroupMaxRows rows, until
// Options.GroupMaxDelay passed, or until the log holds nothing more; a
// transaction with DDL ends its group. A large source transaction streams
// into its open target transaction, so memory stays bounded.
//
// # Writing
//
// Statements are prepared once per table, operation and column set and
// pipelined: up to Options.Pipeline are sent before their results are
// read. Runs of inserts into one table (within and across the grouped
// transactions) go through COPY. Updates set only the columns the source
// sent (unchanged TOASTed values are left alone) and find the row by the
// replica identity's key, taken from the old key when the key changed.
// Tables without a key, captured with REPLICA IDENTITY FULL, are matched
// on the whole old row (compared as text, one row through its ctid).
// Generated columns are never written; identity columns GENERATED ALWAYS
// are written with OVERRIDING SYSTEM VALUE. TRUNCATE keeps CASCADE and
// RESTART IDENTITY. Snapshot rows (op read) are upserts, so they are
// idempotent. The session runs with session_replication_role = replica,
// like native logical replication: the replica's ordinary triggers and
// foreign key checks do not fire.
//
// # Divergence
//
// An update or delete that hits no row, or an insert whose key exists, is
// a divergence. Options.OnConflict decides: stop (the default) ends Run
// with a [DivergenceError] naming the table, key and record ID; log counts
// it and goes on; upsert makes the target follow the source. Resolving a
// divergence rolls the group back and re-applies it one statement at a
// time.
//
// # DDL
//
// A DDL record's statements run under the search_path the source had.
// Data statements in the same query string are skipped (their changes are
// records of their own), as is transaction control. CREATE INDEX, DROP
// INDEX and REINDEX CONCURRENTLY run without CONCURRENTLY (they cannot run
// in a transaction block); statements on databases, tablespaces,
// subscriptions and ALTER SYSTEM are not replayed and are logged.
//
// # One applier per target
//
// Run holds an advisory lock on a dedicated connection for its lifetime;
// a second applier gets [ErrLocked] naming the holder. The progress row
// only moves forward, which keeps apply exactly once even without the
// lock.
package apply
