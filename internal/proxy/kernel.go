package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pgtide/pgtide/internal/sockmap"
)

// kernelRelay loads the in-kernel relay that cfg.Relay asks for. It
// returns nil, to relay in the process, for "process", with audit on, and
// in auto mode when the kernel refuses the program.
func kernelRelay(cfg Config, log *slog.Logger) (*sockmap.Relay, error) {
	switch cfg.Relay {
	case RelayProcess:
		return nil, nil
	case "", RelayAuto, RelayKernel:
	default:
		return nil, fmt.Errorf("proxy: relay %q: want %q, %q or %q", cfg.Relay, RelayAuto, RelayKernel, RelayProcess)
	}

	if cfg.Audit {
		if cfg.Relay == RelayKernel {
			return nil, errors.New("proxy: relay \"kernel\" cannot audit statements; use relay \"auto\" with audit")
		}

		return nil, nil
	}

	r, err := sockmap.New(cfg.MaxConnections)
	if err == nil {
		log.Info("proxy relays in the kernel")
		return r, nil
	}

	if cfg.Relay == RelayKernel {
		return nil, fmt.Errorf("proxy: relay \"kernel\": %w", err)
	}

	log.Info("proxy relays in the process", "reason", err.Error())

	return nil, nil
}

func (s *Server) closeKernelRelay() {
	if s.ksock != nil {
		_ = s.ksock.Close()
	}
}

// pairInKernel hands the session's bytes to the kernel relay. It must run
// before the client hears ReadyForQuery, so that no client byte can
// arrive before the pairing. Nil means relay in the process.
func (c *clientConn) pairInKernel(be *backend) *sockmap.Session {
	if c.s.ksock == nil {
		return nil
	}

	sess, err := c.s.ksock.Pair(c.conn(), be.conn)
	if err != nil {
		// TLS sessions, sessions with bytes already waiting (a client
		// that did not wait for ReadyForQuery) and a full map are
		// relayed by the process.
		c.s.log.Debug("kernel relay not used", "conn_id", c.id, "err", err)
		return nil
	}

	return sess
}

// drainGrace is how long a session whose instance side ended waits for the
// client to hang up before the proxy closes it: the instance's last
// message (such as a FATAL error) may still be on its way through the
// kernel relay, and closing the client socket would drop it.
const drainGrace = 250 * time.Millisecond

// relayKernel waits for a kernel-relayed session to end. The kernel moves
// the bytes; the relay takes both sockets over and closes them.
func (c *clientConn) relayKernel(sess *sockmap.Session) (up, down int64) {
	c.mu.Lock()
	closed := c.closed
	c.stopRelay = sess.Stop
	c.mu.Unlock()

	if closed {
		sess.Stop()
	}

	st := sess.Relay(drainGrace)
	if st.Passed > 0 {
		c.s.log.Debug("kernel relay passed bytes to the process", "conn_id", c.id, "bytes", st.Passed)
	}

	return st.AToB, st.BToA
}
