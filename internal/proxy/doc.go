// Package proxy is pgtide's offline-database proxy: a PostgreSQL
// wire-protocol server that routes each connection by database name to
// an instance booted on demand from a masked snapshot.
//
// # Connecting
//
// Clients connect with any PostgreSQL client to the proxy's address
// (default 127.0.0.1:6433) and a database name:
//
//	shop                 the newest ready snapshot of dataset shop
//	shop@20260102-150405 that snapshot
//	shop@live            the dataset's live replica, read-only by default
//
// The handshake follows the protocol
// (https://www.postgresql.org/docs/current/protocol-flow.html):
// SSLRequest gets TLS when a certificate is configured and 'N' otherwise,
// GSSENCRequest gets 'N', a StartupMessage for a newer 3.x minor version
// or with _pq_ options gets NegotiateProtocolVersion. Users authenticate
// with SCRAM-SHA-256 against the proxy's own user list before anything is
// booted; unknown users run the same exchange and fail the same way.
//
// While an instance boots the client receives a NoticeResponse and waits
// up to [Config.BootTimeout]. The proxy then opens a session on the
// instance over its private Unix socket as the dataset's role, with the
// client's startup parameters, forwards the instance's ParameterStatus
// messages, and gives the client a BackendKeyData of its own, mapped to
// the instance's key, so CancelRequests reach the right session without
// exposing instance keys. From there on bytes are relayed unparsed in
// both directions; with [Config.Audit], frontend messages are framed and
// the text of Query and Parse messages is logged.
//
// # Errors
//
// Failures reach the client as an ErrorResponse with a SQLSTATE: 28P01
// wrong password or unknown user, 3D000 unknown dataset or snapshot,
// 53300 a connection or instance limit, 57P03 an instance that failed to
// boot or is still booting, 0A000 replication connections, 08P01 malformed
// input. Errors of the instance itself pass through unchanged.
//
// # Known limits
//
// Channel binding (SCRAM-SHA-256-PLUS) is not offered. Replication
// connections are refused. The read-only guard of "@live" is a session
// default a client can change; give the live connection a read-only role.
package proxy
