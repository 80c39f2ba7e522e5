// Package snapshot takes, masks, catalogs and prunes physical snapshots of
// PostgreSQL databases for pgtide's offline databases.
//
// # Taking a snapshot
//
// [Manager.Create] copies a configured server with the base-backup
// protocol (pg_basebackup -X stream -c fast) into
// <data_dir>/snapshots/<id>/data and records it in the catalog,
// <data_dir>/snapshots/catalog.json, which is rewritten atomically under a
// file lock so several processes may share it. A snapshot moves through
// the states creating, masking and ready; any failure marks it failed and
// removes its files.
//
// # Masking
//
// Masking happens once, when the snapshot is taken, so instances boot
// already masked. The copy is started privately (Unix socket in a
// private directory, no TCP), declarative per-column [Rule]s and SQL
// scripts run, and then the original values are removed from the files:
// statistics are rebuilt (pg_statistic keeps sample values), the touched
// tables (the whole database when scripts ran) and pg_statistic are
// rewritten with VACUUM FULL, a checkpoint unlinks the old files, the
// server stops cleanly and pg_resetwal drops the WAL, which still holds
// the old rows. Server logs copied from the source are deleted.
//
// What stays outside pgtide's reach: other databases of the same cluster
// are not masked unless rules name them, and blocks freed on the disk are
// not overwritten (use encrypted storage when that matters).
//
// # Retention
//
// [Manager.Prune] keeps the newest Keep ready snapshots of each dataset
// and deletes older and failed ones, except those an instance uses.
package snapshot
