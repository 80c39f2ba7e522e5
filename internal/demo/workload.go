package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultInterval is the pause between two operations of a [Workload]
// when Workload.Interval is zero: about four writes a second.
const DefaultInterval = 250 * time.Millisecond

// Bounds that keep the demo tables small however long the demo runs.
const (
	maxOrders    = 200
	maxCustomers = 50
)

// Workload writes to the demo tables at a steady pace from one goroutine:
// orders are placed (an insert and a stock update in one transaction),
// move through their statuses, get cancelled and cleaned up; customers
// join and change their e-mail; prices change. The tables stay bounded.
//
// A Workload is not safe for concurrent use; run it once.
type Workload struct {
	// DSN connects to the database prepared by [CreateSchema].
	DSN string

	// Interval is the pause between two operations. Zero means
	// DefaultInterval.
	Interval time.Duration

	// Logger receives failed operations at warn level. Nil discards them.
	Logger *slog.Logger

	// Rand picks the operations and values. Nil means a randomly seeded
	// source.
	Rand *rand.Rand

	conn *pgx.Conn
}

// operation is one kind of write with its relative weight.
type operation struct {
	name   string
	weight int
	run    func(w *Workload, ctx context.Context) error
}

var operations = []operation{
	{"place_order", 35, (*Workload).placeOrder},
	{"advance_order", 25, (*Workload).advanceOrder},
	{"cancel_order", 5, (*Workload).cancelOrder},
	{"remove_order", 10, (*Workload).removeOrder},
	{"add_customer", 10, (*Workload).addCustomer},
	{"change_email", 10, (*Workload).changeEmail},
	{"reprice_product", 5, (*Workload).repriceProduct},
}

// Run writes until ctx ends, then returns nil. It fails only when the first
// connection to the database fails; later failures are logged and the
// connection is reopened when it broke.
func (w *Workload) Run(ctx context.Context) error {
	if w.Interval <= 0 {
		w.Interval = DefaultInterval
	}
	if w.Logger == nil {
		w.Logger = slog.New(slog.DiscardHandler)
	}
	if w.Rand == nil {
		w.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}

	conn, err := pgx.Connect(ctx, w.DSN)
	if err != nil {
		return fmt.Errorf("demo workload: connect: %w", err)
	}
	w.conn = conn
	defer func() { w.conn.Close(context.WithoutCancel(ctx)) }()

	total := 0
	for _, op := range operations {
		total += op.weight
	}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		op := pick(w.Rand.IntN(total))
		if err := op.run(w, ctx); err != nil && ctx.Err() == nil {
			w.Logger.Warn("demo write failed", "operation", op.name, "err", err)
			w.reconnect(ctx)
		}
	}
}

// pick returns the operation that owns point n of the summed weights.
func pick(n int) operation {
	for _, op := range operations {
		if n < op.weight {
			return op
		}
		n -= op.weight
	}
	return operations[0]
}

// reconnect replaces a broken connection; a failure is retried at the
// next operation.
func (w *Workload) reconnect(ctx context.Context) {
	if !w.conn.IsClosed() {
		return
	}
	conn, err := pgx.Connect(ctx, w.DSN)
	if err != nil {
		return
	}
	w.conn = conn
}

func (w *Workload) placeOrder(ctx context.Context) error {
	qty := 1 + w.Rand.IntN(4)
	return pgx.BeginFunc(ctx, w.conn, func(tx pgx.Tx) error {
		var product int64
		err := tx.QueryRow(ctx, `
			UPDATE shop.products SET stock = CASE WHEN stock < $1 THEN 1000 ELSE stock - $1 END
			WHERE id = (SELECT id FROM shop.products ORDER BY random() LIMIT 1)
			RETURNING id`, qty).Scan(&product)
		if err != nil {
			return fmt.Errorf("take stock: %w", err)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO shop.orders (customer_id, product_id, quantity, total)
			SELECT c.id, p.id, $2::integer, p.price * $2::integer
			FROM shop.products p,
				(SELECT id FROM shop.customers ORDER BY random() LIMIT 1) c
			WHERE p.id = $1`, product, qty)
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		return nil
	})
}

func (w *Workload) advanceOrder(ctx context.Context) error {
	_, err := w.conn.Exec(ctx, `
		UPDATE shop.orders SET status = CASE status
			WHEN 'pending' THEN 'paid' WHEN 'paid' THEN 'shipped' ELSE 'delivered' END
		WHERE id = (SELECT id FROM shop.orders
			WHERE status IN ('pending', 'paid', 'shipped') ORDER BY random() LIMIT 1)`)
	return err
}

func (w *Workload) cancelOrder(ctx context.Context) error {
	_, err := w.conn.Exec(ctx, `
		UPDATE shop.orders SET status = 'cancelled'
		WHERE id = (SELECT id FROM shop.orders WHERE status = 'pending' ORDER BY id LIMIT 1)`)
	return err
}

// removeOrder deletes the oldest finished order, and keeps deleting the
// oldest ones while the table holds more than maxOrders.
func (w *Workload) removeOrder(ctx context.Context) error {
	_, err := w.conn.Exec(ctx, `
		DELETE FROM shop.orders WHERE id IN (
			(SELECT id FROM shop.orders WHERE status IN ('delivered', 'cancelled')
				ORDER BY id LIMIT 1)
			UNION ALL
			(SELECT id FROM shop.orders ORDER BY id
				LIMIT greatest((SELECT count(*) FROM shop.orders) - $1, 0)))`, maxOrders)
	return err
}

var firstNames = []string{
	"Alan", "Radia", "Donald", "Frances", "John", "Margaret", "Niklaus",
	"Hedy", "Dennis", "Katherine", "Linus", "Shafi", "Tim", "Anita",
}

func (w *Workload) addCustomer(ctx context.Context) error {
	var n int
	if err := w.conn.QueryRow(ctx, `SELECT count(*) FROM shop.customers`).Scan(&n); err != nil {
		return err
	}
	if n >= maxCustomers {
		return w.changeEmail(ctx)
	}
	name := firstNames[w.Rand.IntN(len(firstNames))]
	_, err := w.conn.Exec(ctx, `INSERT INTO shop.customers (name, email) VALUES ($1, $2)`,
		name, fmt.Sprintf("%s.%d@example.com", strings.ToLower(name), w.Rand.IntN(1000)))
	return err
}

var domains = []string{"example.com", "example.org", "example.net"}

func (w *Workload) changeEmail(ctx context.Context) error {
	_, err := w.conn.Exec(ctx, `
		UPDATE shop.customers SET email = lower(name) || '.' || $1::text || '@' || $2::text
		WHERE id = (SELECT id FROM shop.customers ORDER BY random() LIMIT 1)`,
		strconv.Itoa(w.Rand.IntN(1000)), domains[w.Rand.IntN(len(domains))])
	return err
}

func (w *Workload) repriceProduct(ctx context.Context) error {
	// A change of -10% to +10%, never below one cent.
	factor := 0.9 + w.Rand.Float64()*0.2
	tag, err := w.conn.Exec(ctx, `
		UPDATE shop.products SET price = greatest(round(price * $1::numeric, 2), 0.01)
		WHERE id = (SELECT id FROM shop.products ORDER BY random() LIMIT 1)`, factor)
	if err == nil && tag.RowsAffected() == 0 {
		err = errors.New("no product to reprice")
	}
	return err
}
