// Package pgproc runs PostgreSQL server programs for pgtide's offline
// databases: base backups, single servers on a private Unix socket, and
// their shutdown.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the current process has
// effective user id 0, every program started through a [Runner] runs as
// the OS user postgres, and directories the server writes to are handed
// to that user with [Runner.Chown]. The user must exist (`useradd
// --system postgres`) and must be able to traverse the parents of the
// directories it works in.
//
// # Servers
//
// [Runner.Start] execs the postmaster directly (no pg_ctl) in a process
// group of its own, with TCP off unless a port is asked for, and polls
// postmaster.pid until the server reports it is ready. The returned
// [Server] stops it with a fast or immediate shutdown; [Kill] ends a
// postmaster left behind by an earlier process, children included.
package pgproc
