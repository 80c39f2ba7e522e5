package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgtide/pgtide/internal/instance"
	"github.com/pgtide/pgtide/internal/snapshot"
)

// clientConn is one client connection, from accept to close.
type clientConn struct {
	s     *Server
	id    uint64
	since time.Time

	// mu guards nc (replaced by the TLS connection), the fields set
	// during the handshake, and closed.
	mu        sync.Mutex
	nc        net.Conn
	user      string
	database  string
	instance  string
	relayMode string // kernel or process, once active
	stopRelay func() // ends a kernel-relayed session
	active    bool
	closed    bool
}

func (c *clientConn) status() ConnStatus {
	c.mu.Lock()
	defer c.mu.Unlock()

	st := ConnStatus{
		ID: c.id, User: c.user, Database: c.database, Instance: c.instance,
		Remote: c.nc.RemoteAddr().String(), State: "handshake", Since: c.since,
	}
	if c.active {
		st.State, st.Relay = "active", c.relayMode
	}

	return st
}

func (c *clientConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()

	c.closed = true
	_ = c.nc.Close()

	if c.stopRelay != nil {
		c.stopRelay()
	}
}

func (c *clientConn) conn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()

	return c.nc
}

// serve runs the connection: handshake, authentication, routing, relay.
func (c *clientConn) serve(ctx context.Context) {
	defer c.s.removeConn(c)
	defer c.close()

	log := c.s.log.With("conn_id", c.id)

	_ = c.conn().SetDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))

	st, err := c.readStartup()
	if err != nil {
		if !errors.Is(err, errHandled) {
			c.s.metrics.Connections.WithLabelValues("protocol_error").Inc()
			log.DebugContext(ctx, "startup failed", "err", err)
			sendError(c.conn(), newError(codeProtocolViolation, err.Error()))
		}

		return
	}

	user := st.get("user")
	if user == "" {
		c.s.metrics.Connections.WithLabelValues("protocol_error").Inc()
		sendError(c.conn(), newError(codeInvalidAuthSpec, "no PostgreSQL user name specified in startup packet"))

		return
	}

	database := st.get("database")
	if database == "" {
		database = user
	}

	c.mu.Lock()
	c.user, c.database = user, database
	c.mu.Unlock()

	log = log.With("user", user, "database", database)

	if err := c.negotiate(st); err != nil {
		return
	}

	// Authentication comes before anything that costs resources.
	if err := c.authenticate(user); err != nil {
		c.s.metrics.Connections.WithLabelValues("auth_failed").Inc()
		log.InfoContext(ctx, "authentication failed", "err", err)
		// Protocol and channel binding errors keep their own SQLSTATE;
		// anything else is the generic password failure.
		reply := newError(codeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", user))
		errors.As(err, &reply)
		sendError(c.conn(), reply)

		return
	}

	if err := c.checkConnLimits(user); err != nil {
		c.s.metrics.Connections.WithLabelValues("limit").Inc()
		sendError(c.conn(), err)

		return
	}
	release := sync.OnceFunc(func() { c.releaseConnSlot(user) })
	defer release()

	_ = c.conn().SetDeadline(time.Time{})

	be, rt, err := c.connectBackend(ctx, st, database)
	if err != nil {
		c.s.metrics.Connections.WithLabelValues(resultOf(err)).Inc()
		log.InfoContext(ctx, "connection refused", "err", err)
		// Free the slot before the client hears of the failure, so that
		// its next attempt is not refused for a connection already gone.
		release()
		sendError(c.conn(), err)

		return
	}
	defer be.close()

	c.mu.Lock()
	c.instance, c.active = be.instance, true
	c.mu.Unlock()

	key := c.s.registerCancel(be.cancel)
	defer c.s.unregisterCancel(key)

	sess := c.pairInKernel(be)

	c.mu.Lock()
	c.relayMode = "process"
	if sess != nil {
		c.relayMode = "kernel"
	}
	c.mu.Unlock()

	if err := c.sendReady(be, key); err != nil {
		if sess != nil {
			sess.Unpair()
		}

		return
	}

	c.s.metrics.Connections.WithLabelValues("ok").Inc()
	c.s.metrics.Active.Inc()
	defer c.s.metrics.Active.Dec()

	log.DebugContext(ctx, "relaying", "instance", be.instance)

	c.relay(be, rt, sess)
}

// errHandled means the failure was already reported to the client (or the
// client needs no answer, as for cancel requests).
var errHandled = errors.New("handled")

// readStartup answers SSL and GSSAPI encryption requests, handles a
// cancel request, and returns the StartupMessage.
func (c *clientConn) readStartup() (startup, error) {
	tlsDone := false

	for {
		code, body, err := readStartupPacket(c.conn())
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return startup{}, errHandled
			}

			return startup{}, err
		}

		switch code {
		case codeSSL:
			if len(body) != 0 || tlsDone {
				return startup{}, fmt.Errorf("%w: unexpected SSLRequest", errProtocol)
			}

			if c.s.tls == nil {
				if _, err := c.conn().Write([]byte{'N'}); err != nil {
					return startup{}, errHandled
				}

				continue
			}

			if _, err := c.conn().Write([]byte{'S'}); err != nil {
				return startup{}, errHandled
			}

			tc := tls.Server(c.conn(), c.s.tls)
			if err := tc.Handshake(); err != nil {
				return startup{}, errHandled
			}

			c.mu.Lock()
			c.nc = tc
			c.mu.Unlock()

			tlsDone = true

		case codeGSSENC:
			// GSSAPI encryption is not offered; libpq goes on in the
			// clear (or with SSL) after 'N'.
			if _, err := c.conn().Write([]byte{'N'}); err != nil {
				return startup{}, errHandled
			}

		case codeCancel:
			pid, secret, err := parseCancel(body)
			if err == nil {
				c.s.forwardCancel(cancelKey{pid: pid, secret: string(secret)})
			}

			return startup{}, errHandled

		default:
			return parseStartup(code, body)
		}
	}
}

// negotiate answers a client asking for a newer minor protocol version or
// for protocol options (_pq_.*): the proxy speaks 3.0 without options.
func (c *clientConn) negotiate(st startup) error {
	var unknown []string
	for _, p := range st.params {
		if strings.HasPrefix(p.name, "_pq_.") {
			unknown = append(unknown, p.name)
		}
	}

	if st.minor == 0 && len(unknown) == 0 {
		return nil
	}

	buf, err := (&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown}).Encode(nil)
	if err != nil {
		return err
	}

	_, err = c.conn().Write(buf)

	return err
}

// checkConnLimits takes a connection slot for user, or returns the error
// to send.
func (c *clientConn) checkConnLimits(user string) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()

	total := 0
	for _, n := range s.perUser {
		total += n
	}

	if total >= s.cfg.MaxConnections {
		return newError(codeTooManyConnections,
			fmt.Sprintf("sorry, too many clients already (max_connections = %d)", s.cfg.MaxConnections))
	}

	if max := s.cfg.MaxUserConnections; max > 0 && s.perUser[user] >= max {
		return newError(codeTooManyConnections,
			fmt.Sprintf("too many connections for user %q (max_user_connections = %d)", user, max))
	}

	s.perUser[user]++

	return nil
}

func (c *clientConn) releaseConnSlot(user string) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()

	if c.s.perUser[user]--; c.s.perUser[user] <= 0 {
		delete(c.s.perUser, user)
	}
}

// sendReady sends the instance's parameter statuses, the proxy's own
// cancel key and ReadyForQuery.
func (c *clientConn) sendReady(be *backend, key cancelKey) error {
	var buf []byte
	var err error

	for name, value := range be.params {
		if buf, err = (&pgproto3.ParameterStatus{Name: name, Value: value}).Encode(buf); err != nil {
			return err
		}
	}

	if buf, err = (&pgproto3.BackendKeyData{ProcessID: key.pid, SecretKey: []byte(key.secret)}).Encode(buf); err != nil {
		return err
	}

	if buf, err = (&pgproto3.ReadyForQuery{TxStatus: be.txStatus}).Encode(buf); err != nil {
		return err
	}

	_, err = c.conn().Write(buf)

	return err
}

// resultOf names a handshake failure for the connections metric.
func resultOf(err error) string {
	var le *instance.LimitError
	var be *instance.BootError
	var pe *Error

	switch {
	case errors.As(err, &le):
		return "limit"
	case errors.As(err, &be):
		return "boot_failed"
	case errors.Is(err, snapshot.ErrUnknownDataset), errors.Is(err, snapshot.ErrNotFound):
		return "unknown_database"
	case errors.As(err, &pe) && pe.Code == codeInvalidCatalogName:
		return "unknown_database"
	case errors.As(err, &pe) && pe.Code == codeTooManyConnections:
		return "limit"
	default:
		return "backend_error"
	}
}
