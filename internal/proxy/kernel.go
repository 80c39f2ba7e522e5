package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgtide/pgtide/internal/sockmap"
)

// kernelRelay loads the in-kernel relay that cfg.Relay asks for: nil for
// userspace relaying, and for auto mode when the kernel refuses.
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
func (c *clientConn) pairInKernel(be *backend) *sockmap.Pairing {
	if c.s.ksock == nil {
		return nil
	}

	p, err := c.s.ksock.Pair(c.conn(), be.conn)
	if err != nil {
		// TLS sessions, sessions with bytes already waiting (a client
		// that did not wait for ReadyForQuery) and a full map are
		// relayed by the process.
		c.s.log.Debug("kernel relay not used", "conn_id", c.id, "err", err)
		return nil
	}

	return p
}

// drainGrace is how long a session whose instance side ended waits for the
// client to hang up before the proxy closes it: the instance's last
// message (such as a FATAL error) may still be on its way through the
// kernel relay, and closing the client socket would drop it.
const drainGrace = 250 * time.Millisecond

// relayKernel waits for a kernel-relayed session to end. The process
// only sees bytes the kernel could not forward (those that arrived just
// before the pairing, or after one side began closing) and end of
// stream.
func (c *clientConn) relayKernel(be *backend, p *sockmap.Pairing) (up, down int64) {
	client := c.conn()
	before := tcpBytes(client)

	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = copyPlain(be.conn, client)
		// The client is gone: end the instance session too.
		_ = be.conn.Close()
	}()

	_, _ = copyPlain(client, be.conn)
	_ = client.SetReadDeadline(time.Now().Add(drainGrace))
	<-done

	after := tcpBytes(client)
	p.Unpair()
	_ = client.Close()

	return int64(after.Bytes_received - before.Bytes_received), int64(after.Bytes_acked - before.Bytes_acked)
}

// copyPlain copies with Read and Write only. io.Copy would splice, which
// reads a socket's queue directly and would miss data the relay hands to
// the process.
func copyPlain(dst, src net.Conn) (int64, error) {
	buf := make([]byte, 16<<10)

	var n int64
	for {
		r, err := src.Read(buf)
		if r > 0 {
			w, werr := dst.Write(buf[:r])
			n += int64(w)

			if werr != nil {
				return n, werr
			}
		}

		if err != nil {
			return n, err
		}
	}
}

// tcpBytes returns the byte counters of a TCP connection (zero for
// others).
func tcpBytes(c net.Conn) unix.TCPInfo {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return unix.TCPInfo{}
	}

	rc, err := tc.SyscallConn()
	if err != nil {
		return unix.TCPInfo{}
	}

	var info *unix.TCPInfo
	_ = rc.Control(func(fd uintptr) {
		info, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})

	if info == nil {
		return unix.TCPInfo{}
	}

	return *info
}
