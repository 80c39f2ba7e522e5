package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgtide/pgtide/internal/instance"
	"github.com/pgtide/pgtide/internal/snapshot"
)

// route is what a client's database name asks for: a dataset, and
// either a snapshot ID ("" for the newest) or the live replica.
type route struct {
	dataset  string
	snapshot string
	live     bool
}

// parseRoute splits "<dataset>", "<dataset>@<snapshot id>" or
// "<dataset>@live".
func parseRoute(database string) route {
	name, at, ok := strings.Cut(database, "@")
	if !ok {
		return route{dataset: database}
	}

	if at == "live" {
		return route{dataset: name, live: true}
	}

	return route{dataset: name, snapshot: at}
}

// backend is an authenticated session on an instance (or the live
// replica), taken over from pgconn after its startup.
type backend struct {
	conn     net.Conn
	params   map[string]string
	txStatus byte
	cancel   backendKey
	instance string
	lease    *instance.Lease // nil for the live replica
}

func (b *backend) close() {
	_ = b.conn.Close()
	if b.lease != nil {
		b.lease.Release()
	}
}

// relayType tells how to relay a session; today only the audit flag.
type relayType struct{ dataset string }

// notReplayed are startup parameters the proxy sets itself or refuses.
var notReplayed = map[string]bool{"user": true, "database": true, "replication": true}

// connectBackend finds or boots the instance the database name routes to
// and opens a session on it with the client's startup parameters.
func (c *clientConn) connectBackend(ctx context.Context, st startup, database string) (*backend, relayType, error) {
	rt := parseRoute(database)
	ds, ok := c.s.cfg.Datasets[rt.dataset]
	if !ok {
		return nil, relayType{}, c.unknownDatabase(database, "")
	}

	if r := st.get("replication"); r != "" && r != "false" && r != "off" && r != "0" && r != "no" {
		return nil, relayType{}, newError(codeFeatureNotSupp, "replication connections are not supported by the pgtide proxy")
	}

	params := map[string]string{}
	for _, p := range st.params {
		if !notReplayed[p.name] && !strings.HasPrefix(p.name, "_pq_.") {
			params[p.name] = p.value
		}
	}

	if rt.live {
		return c.connectLive(ctx, ds, rt, params)
	}

	bctx, cancel := context.WithTimeout(ctx, c.s.cfg.BootTimeout)
	defer cancel()

	start := timeNow()
	lease, err := c.s.ctrl.Acquire(bctx, instance.Request{
		User:     c.user,
		Dataset:  rt.dataset,
		Snapshot: rt.snapshot,
		Progress: func(msg string) { _ = sendNotice(c.conn(), "pgtide: "+msg+", please wait") },
	})
	if err != nil {
		return nil, relayType{}, c.acquireError(database, err)
	}

	c.s.metrics.BootWait.Observe(timeNow().Sub(start).Seconds())

	cfg, err := pgconn.ParseConfig(lease.Endpoint.DSN())
	if err != nil {
		lease.Release()
		return nil, relayType{}, fmt.Errorf("parse instance address: %w", err)
	}

	cfg.RuntimeParams = params

	be, err := dial(bctx, cfg)
	if err != nil {
		lease.Release()
		return nil, relayType{}, err
	}

	be.cancel.network, be.cancel.address = lease.Endpoint.Network()
	be.instance, be.lease = lease.InstanceID, lease

	return be, relayType{dataset: rt.dataset}, nil
}

// connectLive opens a read-only session on the dataset's live replica.
func (c *clientConn) connectLive(ctx context.Context, ds Dataset, rt route, params map[string]string) (*backend, relayType, error) {
	dsn := ds.Live
	if dsn == "" {
		dsn = ds.Source
	}

	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, relayType{}, fmt.Errorf("parse live connection string: %w", err)
	}

	// options could carry -c default_transaction_read_only=off.
	delete(params, "options")
	params["default_transaction_read_only"] = "on"
	cfg.RuntimeParams = params

	lctx, cancel := context.WithTimeout(ctx, c.s.cfg.BootTimeout)
	defer cancel()

	be, err := dial(lctx, cfg)
	if err != nil {
		return nil, relayType{}, err
	}

	be.cancel.network, be.cancel.address = pgconn.NetworkAddress(cfg.Host, cfg.Port)
	be.instance = "live"

	if be.params["is_superuser"] == "on" {
		c.s.warnLiveSuperuser(rt.dataset, cfg.User)
	}

	return be, relayType{dataset: rt.dataset}, nil
}

// dial connects with pgconn, then takes the raw connection over.
func dial(ctx context.Context, cfg *pgconn.Config) (*backend, error) {
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return nil, pe
		}

		return nil, &Error{Code: codeCannotConnectNow, Message: "pgtide proxy: cannot reach the database server", Detail: err.Error()}
	}

	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(context.Background())
		return nil, fmt.Errorf("take over instance connection: %w", err)
	}

	return &backend{
		conn:     hc.Conn,
		params:   hc.ParameterStatuses,
		txStatus: hc.TxStatus,
		cancel:   backendKey{pid: hc.PID, secret: hc.SecretKey},
	}, nil
}

// acquireError turns a controller error into what the client sees.
func (c *clientConn) acquireError(database string, err error) error {
	var le *instance.LimitError
	var be *instance.BootError

	switch {
	case errors.Is(err, snapshot.ErrUnknownDataset), errors.Is(err, snapshot.ErrNotFound):
		return c.unknownDatabase(database, err.Error())
	case errors.As(err, &le):
		return &Error{
			Code:    codeTooManyConnections,
			Message: fmt.Sprintf("no instance available for %q: limit %s = %d reached", database, le.Limit, le.Max),
			Hint:    "Close idle sessions or try again later.",
		}
	case errors.As(err, &be):
		detail, _, _ := strings.Cut(be.Err.Error(), "\n")
		return &Error{
			Code:    codeCannotConnectNow,
			Message: fmt.Sprintf("could not boot an instance for %q", database),
			Detail:  detail,
		}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{
			Code:    codeCannotConnectNow,
			Message: fmt.Sprintf("the instance for %q is still booting after %s", database, c.s.cfg.BootTimeout),
			Hint:    "Try again in a moment.",
		}
	case errors.Is(err, instance.ErrClosed):
		return newError(codeAdminShutdown, "the pgtide proxy is shutting down")
	default:
		return err
	}
}

// unknownDatabase is the 3D000 error, with the datasets as a hint.
func (c *clientConn) unknownDatabase(database, detail string) error {
	names := make([]string, 0, len(c.s.cfg.Datasets))
	for n := range c.s.cfg.Datasets {
		names = append(names, n)
	}

	sort.Strings(names)

	return &Error{
		Code:    codeInvalidCatalogName,
		Message: fmt.Sprintf("database %q does not exist", database),
		Detail:  detail,
		Hint:    "Datasets: " + strings.Join(names, ", ") + ` (use "<dataset>", "<dataset>@<snapshot id>" or "<dataset>@live").`,
	}
}
