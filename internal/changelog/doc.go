// Package changelog is the durable change log of pgtide: one NATS JetStream
// stream per source, written by exactly one [Publisher] and read by any
// number of ordered readers.
//
// The package deals in subjects, headers and opaque payloads; the encoding of
// change records lives elsewhere.
//
// # Server
//
// [Open] either starts a NATS server with JetStream inside the current
// process (the default, storing its files under [Config.DataDir]) or connects
// to an external NATS server or cluster given by [Config.URL]. An embedded
// server can also accept TCP clients from other processes when
// [Config.Listen] is set.
//
// # Naming
//
// A source named "shop" is stored in the stream PGTIDE_SHOP (see
// [StreamName]) under subjects of the form
//
//	pgtide.shop.<schema>.<table>
//
// where schema and table are escaped with [EscapeToken] so that any
// PostgreSQL identifier, including ones holding dots, wildcards, spaces or
// non-ASCII letters, forms exactly one subject token. [TableFilter] turns a
// "schema.table" glob into a NATS filter subject.
//
// # Ordering and gaps
//
// A [Publisher] stamps every message with the stream sequence it expects the
// stream to end at (the Nats-Expected-Last-Sequence header), so the server
// stores a message only directly after its predecessor: the log holds the
// published messages in publish order with no gap. The first failed publish
// breaks the publisher: every later publish fails too, and the caller must
// create a new publisher, which starts from the sequence the stream really
// holds. Each source must have a single writer.
//
// # Reading
//
// [Log.Read] delivers messages in stream order through an ephemeral ordered
// consumer that pulls bounded batches, so a slow reader never makes the
// process buffer more than one batch.
package changelog
