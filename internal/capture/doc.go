// Package capture streams a PostgreSQL database's committed changes into
// the change log through logical replication (pgoutput, one slot per
// source).
//
// [Setup] installs what capture needs in the source: the pgtide schema
// with its DDL log, the publications and their table lists, the DDL event
// trigger and the slot. [New] and [Capture.Run] then stream: pgoutput
// messages are decoded (by this package's own bounds-checked decoder),
// numbered per transaction, grouped into [change.Batch] messages and
// published in order; the slot is confirmed only up to what the log has
// acknowledged. After any restart, records the log already holds are
// skipped, so the log receives every committed change exactly once.
//
// docs/architecture.md explains the design and the guarantees.
package capture
