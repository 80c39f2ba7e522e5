package capture

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgtide/pgtide/internal/change"
)

func TestTableSelection(t *testing.T) {
	e := newTestEnv(t)
	e.opts.Schemas = []string{"public", "Billing"}
	e.opts.Tables = []string{"order*", "Billing.*"}
	e.opts.ExcludeTables = []string{"orders_archive"}
	e.exec(t, `CREATE SCHEMA "Billing";
		CREATE TABLE orders (id int PRIMARY KEY); CREATE TABLE order_items (id int PRIMARY KEY);
		CREATE TABLE orders_archive (id int PRIMARY KEY); CREATE TABLE customers (id int PRIMARY KEY);
		CREATE TABLE "Billing"."Invoice.2026" (id int PRIMARY KEY);
		CREATE SCHEMA other; CREATE TABLE other.orders (id int PRIMARY KEY)`)
	e.setup(t)
	e.start(t)
	e.exec(t, `INSERT INTO orders VALUES (1); INSERT INTO order_items VALUES (1);
		INSERT INTO orders_archive VALUES (1); INSERT INTO customers VALUES (1);
		INSERT INTO other.orders VALUES (1); INSERT INTO "Billing"."Invoice.2026" VALUES (1)`)
	// A table created later that matches is picked up by the trigger.
	e.exec(t, `CREATE TABLE orders_2027 (id int PRIMARY KEY); INSERT INTO orders_2027 VALUES (1)`)

	recs := waitRecords(t, e.log, "src", func(r []change.Record) bool {
		return countOp(r, "orders_2027", change.OpInsert) == 1
	})
	var got []string
	for _, r := range recs {
		if r.Op == change.OpInsert {
			got = append(got, r.Schema+"."+r.Table)
		}
	}
	want := "public.orders public.order_items Billing.Invoice.2026 public.orders_2027"
	if strings.Join(got, " ") != want {
		t.Errorf("captured inserts into %v, want %s", got, want)
	}
}

func TestWALRetentionAlert(t *testing.T) {
	e := newTestEnv(t)
	reg := prometheus.NewRegistry()
	e.opts.Metrics = NewMetrics(reg)
	e.opts.MaxRetainedWAL = 1
	e.exec(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	e.setup(t)
	e.start(t)
	e.exec(t, `INSERT INTO t SELECT generate_series(1, 1000)`)
	deadline := time.Now().Add(30 * time.Second)
	for testutil.ToFloat64(e.opts.Metrics.RetentionOver.WithLabelValues("src")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("pgtide_capture_wal_retention_exceeded never became 1 with max_retained_wal = 1 byte")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := testutil.ToFloat64(e.opts.Metrics.RetainedWAL.WithLabelValues("src")); v <= 1 {
		t.Errorf("pgtide_capture_retained_wal_bytes = %v, want > 1", v)
	}
}
