package demo

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/pgtest"
)

func TestWorkload(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.DSN("postgres")

	// CreateSchema is idempotent.
	for range 2 {
		if err := CreateSchema(t.Context(), dsn); err != nil {
			t.Fatalf("CreateSchema: %v", err)
		}
	}

	// Write as fast as the database allows until the tables have grown.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := &Workload{DSN: dsn, Interval: time.Millisecond, Rand: rand.New(rand.NewPCG(1, 2))}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var orders, customers int
		err := conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM shop.orders),
			(SELECT count(*) FROM shop.customers)`).Scan(&orders, &customers)
		if err != nil {
			t.Fatal(err)
		}
		if orders >= 5 && customers > 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workload wrote %d orders and %d customers, want at least 5 and 6",
				orders, customers)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Workload.Run = %v, want nil after its context ended", err)
	}
}

func TestWorkloadConnectError(t *testing.T) {
	w := &Workload{DSN: "postgres://postgres@127.0.0.1:1/none?connect_timeout=2"}
	if err := w.Run(t.Context()); err == nil {
		t.Error("Workload.Run without a database succeeded, want an error")
	}
}
