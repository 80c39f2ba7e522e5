package proxy

import (
	"crypto/elliptic"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

func packet(code uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint32(b, code)

	return append(b, body...)
}

func TestHandshakeRawNegotiation(t *testing.T) {
	s := startProxy(t, nil)

	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	_ = c.SetDeadline(time.Now().Add(10 * time.Second))

	one := make([]byte, 1)
	for _, code := range []uint32{codeGSSENC, codeSSL} {
		if _, err := c.Write(packet(code, nil)); err != nil {
			t.Fatal(err)
		}

		if _, err := io.ReadFull(c, one); err != nil || one[0] != 'N' {
			t.Fatalf("answer to request %d = %q, %v; want 'N'", code, one, err)
		}
	}

	// Protocol 3.2 with an option: the proxy answers with 3.0.
	body := []byte("user\x00ann\x00database\x00shop\x00_pq_.extra\x00x\x00\x00")
	if _, err := c.Write(packet(3<<16|2, body)); err != nil {
		t.Fatal(err)
	}

	fe := pgproto3.NewFrontend(c, c)

	msg, err := fe.Receive()
	npv, ok := msg.(*pgproto3.NegotiateProtocolVersion)
	if err != nil || !ok || npv.NewestMinorProtocol != 0 || len(npv.UnrecognizedOptions) != 1 {
		t.Fatalf("first reply = %#v, %v; want NegotiateProtocolVersion 3.0 with one option", msg, err)
	}

	msg, err = fe.Receive()
	if sasl, ok := msg.(*pgproto3.AuthenticationSASL); err != nil || !ok || sasl.AuthMechanisms[0] != "SCRAM-SHA-256" {
		t.Fatalf("second reply = %#v, %v; want AuthenticationSASL SCRAM-SHA-256", msg, err)
	}
}

func TestTLS(t *testing.T) {
	tc, _ := selfSigned(t, elliptic.P256())
	s := startProxy(t, func(c *Config) { c.TLSConfig = tc })

	cfg, err := pgx.ParseConfig(dsn(s, "ann", annPassword, "shop@live"))
	if err != nil {
		t.Fatal(err)
	}

	cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true}

	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())

	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("connection is %T, want *tls.Conn", conn.PgConn().Conn())
	}

	if err := conn.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}
