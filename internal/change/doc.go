// Package change defines the change event that flows through pgtide: one
// [Record] per row change, grouped by source transaction, and its encoding in
// the change log.
//
// # Records and batches
//
// A [Record] carries everything a consumer needs to apply or forward one
// change: the source, the commit LSN and the position inside the
// transaction (together the record's stable [ID]), the transaction id and
// commit time, the table, the operation, column metadata, new and old
// values, the columns whose TOASTed value did not change, and whether it is
// the last record of its transaction.
//
// In the log, consecutive records of one transaction and one table share a
// single message: a [Batch]. The batch stores the common fields once, so
// column metadata is not repeated per row. Positions inside a batch are
// consecutive.
//
// # Values
//
// Values are lossless. In text mode a value is the exact text the source's
// output function produced (with the session settings pgtide fixes on the
// replication connection: UTC, ISO dates, hex bytea, shortest exact floats).
// In binary mode it is the type's binary send format. [Value] keeps the
// bytes and their format; the JSON encoding writes a text value that is
// valid UTF-8 as a JSON string and anything else as base64.
package change
