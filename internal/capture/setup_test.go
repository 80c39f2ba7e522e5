package capture

import (
	"strings"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/change"
)

func TestSetupWithoutSuperuser(t *testing.T) {
	e := newTestEnv(t)
	e.exec(t, `CREATE ROLE app LOGIN REPLICATION; GRANT CREATE ON DATABASE postgres TO app;
		CREATE TABLE owned (id int PRIMARY KEY); ALTER TABLE owned OWNER TO app`)
	e.opts.DSN = strings.Replace(e.dsn, "postgres@", "app@", 1)

	_, err := Setup(t.Context(), e.opts)
	if err == nil || !strings.Contains(err.Error(), "superuser") || !strings.Contains(err.Error(), "ddl: false") {
		t.Fatalf("Setup with DDL as a non-superuser: error %v, want one naming the superuser requirement and ddl: false", err)
	}

	e.opts.DDL = false
	if _, err := Setup(t.Context(), e.opts); err != nil {
		t.Fatalf("Setup with ddl: false as the table owner: %v", err)
	}
	e.start(t)
	e.exec(t, `INSERT INTO owned VALUES (1)`)
	waitRecords(t, e.log, "src", func(r []change.Record) bool { return countOp(r, "owned", change.OpInsert) == 1 })
}

func TestSetupRejectsForeignObjects(t *testing.T) {
	e := newTestEnv(t)
	e.exec(t, `CREATE PUBLICATION pgtide_src FOR ALL TABLES`)
	if _, err := Setup(t.Context(), e.opts); err == nil || !strings.Contains(err.Error(), "publication pgtide_src exists") {
		t.Errorf("Setup over a foreign publication: error %v, want a conflict naming it", err)
	}
	e.exec(t, `DROP PUBLICATION pgtide_src`)
	e.exec(t, `SELECT pg_create_logical_replication_slot('pgtide_src', 'test_decoding')`)
	if _, err := Setup(t.Context(), e.opts); err == nil || !strings.Contains(err.Error(), `plugin "test_decoding"`) {
		t.Errorf("Setup over a test_decoding slot: error %v, want a conflict naming the plugin", err)
	}
}

// TestSlotAdvancesWhileIdle writes WAL only in another database: the slot
// must still move, so the source never keeps that WAL for pgtide.
func TestSlotAdvancesWhileIdle(t *testing.T) {
	e := newTestEnv(t)
	e.exec(t, `CREATE TABLE quiet (id int PRIMARY KEY)`)
	e.setup(t)
	e.start(t)
	if err := e.pg.CreateDatabase(t.Context(), "busy"); err != nil {
		t.Fatal(err)
	}
	if err := e.pg.Exec(t.Context(), "busy", `CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 200000) g`); err != nil {
		t.Fatal(err)
	}
	target := queryStrings(t, e.dsn, `SELECT pg_current_wal_lsn()::text`)[0]
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := queryStrings(t, e.dsn, `SELECT (confirmed_flush_lsn >= $1::pg_lsn)::text FROM pg_replication_slots
			WHERE slot_name = 'pgtide_src'`, target)
		if ok[0] == "true" {
			return
		}
		if time.Now().After(deadline) {
			got := queryStrings(t, e.dsn, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots`)
			t.Fatalf("slot confirmed %v, never reached %s while only another database wrote", got, target)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
