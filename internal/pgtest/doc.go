// Package pgtest starts throwaway PostgreSQL clusters for tests, benchmarks
// and the demo command.
//
// A cluster lives in a fresh directory: initdb writes the data directory,
// the server listens on 127.0.0.1 on a free port and on a Unix socket in
// the same directory, and logical replication is enabled. Durability is
// switched off (fsync, synchronous_commit, full_page_writes) because the
// data is thrown away; do not use these clusters for anything that must
// survive a crash.
//
// # Binaries
//
// [FindBinDir] locates initdb, postgres and pg_ctl: first through
// pg_config --bindir, then on PATH, then in the newest
// /usr/lib/postgresql/<version>/bin. On Debian and Ubuntu
// `apt-get install postgresql` provides them.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the current process has
// effective user id 0, the cluster directory is handed to the OS user
// postgres and every server binary (including those started through
// [Cluster.Command]) runs as that user. The user must exist
// (`useradd --system postgres`) and must be able to traverse every parent
// of [Options.Dir]; the default parent, os.TempDir, normally is.
//
// # Tests
//
// [Start] is the test helper: it fails the test when the cluster cannot be
// started and registers a cleanup that stops the server and removes its
// directory.
//
//	func TestSomething(t *testing.T) {
//		c := pgtest.Start(t)
//		conn, err := pgx.Connect(t.Context(), c.DSN("postgres"))
//		...
//	}
package pgtest
