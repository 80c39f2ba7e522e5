package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelKey is the key the proxy gives a client in BackendKeyData.
type cancelKey struct {
	pid    uint32
	secret string
}

// backendKey is where and how to cancel the instance session behind a
// client's key.
type backendKey struct {
	network, address string
	pid              uint32
	secret           []byte
}

// registerCancel issues a fresh cancel key for a session and maps it to
// the instance's key. The client never learns the instance's key.
func (s *Server) registerCancel(bk backendKey) cancelKey {
	s.mu.Lock()
	defer s.mu.Unlock()

	for {
		var b [8]byte
		_, _ = rand.Read(b[:])

		k := cancelKey{pid: binary.BigEndian.Uint32(b[:4]) & 0x7fffffff, secret: string(b[4:])}
		if _, taken := s.cancels[k]; !taken && k.pid != 0 {
			s.cancels[k] = bk
			return k
		}
	}
}

func (s *Server) unregisterCancel(k cancelKey) {
	s.mu.Lock()
	defer s.mu.Unlock()

	delete(s.cancels, k)
}

// forwardCancel sends a cancel request for the session behind k. Unknown
// keys are ignored, as PostgreSQL does, so nothing can be learned from
// probing them.
func (s *Server) forwardCancel(k cancelKey) {
	s.mu.Lock()
	bk, ok := s.cancels[k]
	s.mu.Unlock()

	if !ok {
		return
	}

	conn, err := net.DialTimeout(bk.network, bk.address, 5*time.Second)
	if err != nil {
		s.log.Warn("cancel request failed", "err", err)
		return
	}
	defer conn.Close()

	buf, err := (&pgproto3.CancelRequest{ProcessID: bk.pid, SecretKey: bk.secret}).Encode(nil)
	if err != nil {
		return
	}

	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(buf); err != nil {
		s.log.Warn("cancel request failed", "err", err)
		return
	}

	s.metrics.CancelRequests.Inc()

	// The server closes the connection once it has read the request;
	// waiting for that keeps the order "cancel sent, then reply".
	_, _ = conn.Read(make([]byte, 1))
}
