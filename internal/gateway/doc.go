// Package gateway serves the change log to applications over HTTP long
// polling, Server-Sent Events, WebSocket and gRPC, with one cursor model,
// one JSON form of a change, and the same subscription options on every
// transport.
//
// # Cursors
//
// Every delivered change carries an opaque cursor: the stream sequence of
// its log message, its index in the message and its record ID, with a
// version byte and a CRC-32C that also covers the source name. Resuming
// from a cursor delivers exactly the changes after it. A cursor the log
// no longer holds fails with code cursor_expired (the client must take a
// new snapshot); a garbled one, or one of another source or of a log that
// was recreated, fails with invalid_cursor. A subscription starts from
// "beginning", "now" (the default) or a cursor.
//
// # Changes
//
// A change is a JSON object (see newEvent for the fields). Column values
// follow the column's type: int2, int4 and oid are numbers; int8 is a
// number up to 2^53 in magnitude and a string beyond; float4 and float8
// are numbers, NaN and ±Infinity strings; numeric is always a string so
// no digit is lost; bool is a boolean; json and jsonb are embedded; values
// in binary format, and text that is not UTF-8, are {"base64": …};
// everything else, arrays included, is the PostgreSQL text form as a
// string.
//
// # Subscription options
//
// tables selects "schema.table" patterns; ops the operations; columns the
// columns shown; where is a row predicate in the expr language
// (https://expr-lang.org) over new, old, op, schema and table, such as
// `op == "insert" && new.total > 100`, compiled once per subscription (a
// failure to evaluate, such as comparing a missing column, does not
// match); transactions adds a "commit" change after the last record of
// each transaction the subscription delivered from; debounce holds
// changes for a window and delivers an update of a row only in its
// newest version in the window. Debounced changes keep log order: an
// update appears at the position of its newest version, other operations
// on the row end the coalescing, so each row's changes stay in order.
//
// # Slow consumers
//
// Each connection has a bounded send queue. A subscription that finds it
// full for Config.SlowConsumerTimeout ends the connection with the cursor
// to resume from: an SSE "error" event, WebSocket close code 4008, or a
// gRPC ResourceExhausted status with a google.rpc.ErrorInfo detail.
//
// # Consumer groups
//
// A named group is a durable JetStream consumer: changes are shared among
// members, each delivery is acknowledged or rejected through its ack id,
// and redelivered until acknowledged (at least once).
//
// # Authentication
//
// With Config.Tokens or Config.JWT set, requests need a bearer token (the
// Authorization header, or access_token in the query for browsers). A
// token's Grant limits sources, tables, columns and rows. A missing or
// invalid token is answered 401, a request beyond the grant 403, each
// with the reason.
package gateway
