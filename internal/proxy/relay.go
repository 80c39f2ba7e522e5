package proxy

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"time"

	"github.com/pgtide/pgtide/internal/sockmap"
)

var timeNow = time.Now

// relay moves bytes both ways until either side closes: in the kernel
// when the session is paired there, in the process otherwise. Without
// audit the bytes are not parsed at all.
func (c *clientConn) relay(be *backend, rt relayType, sess *sockmap.Session) {
	mode, run := "process", func() (int64, int64) { return c.relayProcess(be, rt) }
	if sess != nil {
		mode, run = "kernel", func() (int64, int64) { return c.relayKernel(sess) }
	}

	c.s.metrics.Relays.WithLabelValues(mode).Inc()
	up, down := run()
	c.s.metrics.Bytes.WithLabelValues("client_to_server").Add(float64(up))
	c.s.metrics.Bytes.WithLabelValues("server_to_client").Add(float64(down))
}

// relayProcess copies bytes in the proxy process.
func (c *clientConn) relayProcess(be *backend, rt relayType) (up, down int64) {
	client := c.conn()

	done := make(chan struct{})
	go func() {
		defer close(done)

		if c.s.cfg.Audit {
			up, _ = c.auditCopy(be.conn, client, rt)
		} else {
			// Between plain sockets io.Copy splices (splice(2)) on
			// Linux; measured, that beats a read/write loop and a
			// blocking thread per direction.
			up, _ = io.Copy(be.conn, client)
		}

		// The client is gone: end the instance session too.
		_ = be.conn.Close()
	}()

	down, _ = io.Copy(client, be.conn)
	_ = client.Close()
	<-done

	return up, down
}

// auditMax bounds the statement text read for the audit log; longer
// statements are logged truncated and relayed in full.
const auditMax = 64 << 10

// auditCopy relays frontend messages from src to dst, logging the text
// of Query and Parse messages.
func (c *clientConn) auditCopy(dst net.Conn, src net.Conn, rt relayType) (int64, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	bw := bufio.NewWriterSize(dst, 64<<10)

	var n int64
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			_ = bw.Flush()
			return n, err
		}

		size := int64(binary.BigEndian.Uint32(hdr[1:])) - 4
		if size < 0 {
			return n, errProtocol
		}

		if _, err := bw.Write(hdr[:]); err != nil {
			return n, err
		}

		head := int64(0)
		if hdr[0] == 'Q' || hdr[0] == 'P' {
			head = min(size, auditMax)
			body := make([]byte, head)
			if _, err := io.ReadFull(br, body); err != nil {
				return n, err
			}

			c.logStatement(hdr[0], body, rt, head < size)

			if _, err := bw.Write(body); err != nil {
				return n, err
			}
		}

		if _, err := io.CopyN(bw, br, size-head); err != nil {
			return n, err
		}

		n += 5 + size

		// Flush when no more input is waiting, so small messages go out
		// together and nothing waits for more input.
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return n, err
			}
		}
	}
}

// logStatement writes one audit record.
func (c *clientConn) logStatement(typ byte, body []byte, rt relayType, truncated bool) {
	kind := "query"
	if typ == 'P' {
		kind = "parse"
		if _, rest, ok := cutString(body); ok { // statement name
			body = rest
		}
	}

	text, _, _ := cutString(append(body, 0))

	c.mu.Lock()
	user, inst := c.user, c.instance
	c.mu.Unlock()

	c.s.audit.Info("statement",
		"conn_id", c.id,
		"user", user,
		"dataset", rt.dataset,
		"instance", inst,
		"kind", kind,
		"truncated", truncated,
		"statement", text)
}
