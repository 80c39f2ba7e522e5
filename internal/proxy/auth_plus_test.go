package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgtide/pgtide/internal/proxy/scram"
)

// selfSigned returns a TLS configuration with a self-signed certificate
// for 127.0.0.1 on a key of curve, and that certificate.
func selfSigned(t *testing.T, curve elliptic.Curve) (*tls.Config, *x509.Certificate) {
	t.Helper()

	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, cert
}

// TestChannelBindingClients connects pgx and psql with
// channel_binding=require through a proxy with TLS, for certificates
// whose channel binding hashes differ (SHA-256 and SHA-384).
func TestChannelBindingClients(t *testing.T) {
	for _, tt := range []struct {
		name  string
		curve elliptic.Curve
	}{{"p256_sha256", elliptic.P256()}, {"p384_sha384", elliptic.P384()}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := selfSigned(t, tt.curve)
			s := startProxy(t, func(c *Config) { c.TLSConfig = cfg })

			want := []string{scram.MechanismPlus, scram.Mechanism}
			if got := saslMechanisms(t, s, true); !slices.Equal(got, want) {
				t.Fatalf("mechanisms offered over TLS = %q, want %q", got, want)
			}

			conn, err := pgx.Connect(t.Context(),
				dsn(s, "ann", annPassword, "shop@live")+" sslmode=require channel_binding=require")
			if err != nil {
				t.Fatalf("pgx with channel_binding=require: %v", err)
			}
			defer conn.Close(t.Context())

			if err := conn.Ping(t.Context()); err != nil {
				t.Fatal(err)
			}

			cmd := clientCmd(t, s, "psql", "-X", "-A", "-t", "-c", "SELECT 'bound'")
			cmd.Env = append(cmd.Env, "PGSSLMODE=require", "PGCHANNELBINDING=require", "PGDATABASE=shop@live")
			if out := run(t, cmd, ""); strings.TrimSpace(out) != "bound" {
				t.Fatalf("psql with channel_binding=require printed %q, want bound", out)
			}

			// A wrong password still fails, with the binding right.
			_, err = pgx.Connect(t.Context(),
				dsn(s, "ann", "nope", "shop@live")+" sslmode=require channel_binding=require")
			if pgCode(err) != codeInvalidPassword {
				t.Fatalf("wrong password over SCRAM-SHA-256-PLUS = %v, want SQLSTATE 28P01", err)
			}
		})
	}
}

// TestChannelBindingPlainTCP checks that without TLS only SCRAM-SHA-256
// is offered, so clients requiring channel binding give up.
func TestChannelBindingPlainTCP(t *testing.T) {
	s := startProxy(t, nil)

	if got := saslMechanisms(t, s, false); !slices.Equal(got, []string{scram.Mechanism}) {
		t.Fatalf("mechanisms offered over plain TCP = %q, want only %s", got, scram.Mechanism)
	}

	_, err := pgx.Connect(t.Context(), dsn(s, "ann", annPassword, "shop@live")+" channel_binding=require")
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "channel binding required") {
		t.Fatalf("pgx with channel_binding=require over plain TCP = %v, "+
			"want a client-side channel binding error", err)
	}

	cmd := clientCmd(t, s, "psql", "-X", "-c", "SELECT 1")
	cmd.Env = append(cmd.Env, "PGCHANNELBINDING=require", "PGDATABASE=shop@live")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "channel binding") {
		t.Fatalf("psql with channel_binding=require over plain TCP = %v:\n%s\nwant a channel binding error",
			err, out)
	}

	// Without channel_binding=require the client authenticates as before.
	conn := connect(t, s, "shop@live")
	if err := conn.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// saslMechanisms connects to s as ann, with TLS when useTLS, and returns
// the mechanisms of the AuthenticationSASL message.
func saslMechanisms(t *testing.T, s *Server, useTLS bool) []string {
	t.Helper()

	c := dialProxy(t, s, useTLS)
	fe := pgproto3.NewFrontend(c, c)

	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "ann", "database": "shop@live"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}

	msg, err := fe.Receive()
	sasl, ok := msg.(*pgproto3.AuthenticationSASL)
	if err != nil || !ok {
		t.Fatalf("answer to StartupMessage = %#v, %v; want AuthenticationSASL", msg, err)
	}

	return sasl.AuthMechanisms
}

// dialProxy opens a connection to s, with TLS (not verified) when useTLS.
func dialProxy(t *testing.T, s *Server, useTLS bool) net.Conn {
	t.Helper()

	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))

	if !useTLS {
		return c
	}

	if _, err := c.Write(packet(codeSSL, nil)); err != nil {
		t.Fatal(err)
	}

	one := make([]byte, 1)
	if _, err := c.Read(one); err != nil || one[0] != 'S' {
		t.Fatalf("answer to SSLRequest = %q, %v; want 'S'", one, err)
	}

	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}

	return tc
}

// TestChannelBindingForgedThroughProxy sends, over TLS, a client-final
// message whose binding data is another certificate's, as a man in the
// middle relaying an exchange would: the proxy refuses it.
func TestChannelBindingForgedThroughProxy(t *testing.T) {
	cfg, _ := selfSigned(t, elliptic.P256())
	s := startProxy(t, func(c *Config) { c.TLSConfig = cfg })

	_, other := selfSigned(t, elliptic.P256())
	forged, err := scram.TLSServerEndPoint(other)
	if err != nil {
		t.Fatal(err)
	}

	c := dialProxy(t, s, true)
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "ann", "database": "shop@live"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}

	msg, err := exchange(t, fe, scram.MechanismPlus, "p="+scram.BindingType+",,", forged)
	er, ok := msg.(*pgproto3.ErrorResponse)
	if err != nil || !ok || er.Severity != "FATAL" || er.Code != codeInvalidAuthSpec {
		t.Fatalf("answer to a forged channel binding = %#v, %v; want a FATAL ErrorResponse", msg, err)
	}
}

// exchange runs a SCRAM exchange as a client that does not know the
// password, with gs2 header gs2 and binding data cbind. It returns the
// server's answer to the client-final-message, or the first message that
// is not AuthenticationSASLContinue, or the error that ended reading.
func exchange(
	t *testing.T, fe *pgproto3.Frontend, mechanism, gs2 string, cbind []byte,
) (pgproto3.BackendMessage, error) {
	t.Helper()

	msg, err := fe.Receive()
	if _, ok := msg.(*pgproto3.AuthenticationSASL); err != nil || !ok {
		t.Fatalf("first message = %#v, %v; want AuthenticationSASL", msg, err)
	}

	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: mechanism, Data: []byte(gs2 + "n=,r=clientnonce")})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}

	msg, err = fe.Receive()
	cont, ok := msg.(*pgproto3.AuthenticationSASLContinue)
	if err != nil || !ok {
		return msg, err
	}

	nonce, _, _ := strings.Cut(strings.TrimPrefix(string(cont.Data), "r="), ",")
	c := base64.StdEncoding.EncodeToString(append([]byte(gs2), cbind...))
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))

	fe.Send(&pgproto3.SASLResponse{Data: fmt.Appendf(nil, "c=%s,r=%s,p=%s", c, nonce, proof)})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}

	return fe.Receive()
}

// TestAuthenticateErrors drives clientConn.authenticate over an in-memory
// TLS connection and checks the error the client is to receive for each
// way of breaking the channel binding rules.
func TestAuthenticateErrors(t *testing.T) {
	cfg, cert := selfSigned(t, elliptic.P256())
	binding, err := scram.TLSServerEndPoint(cert)
	if err != nil {
		t.Fatal(err)
	}

	_, other := selfSigned(t, elliptic.P256())
	forged, err := scram.TLSServerEndPoint(other)
	if err != nil {
		t.Fatal(err)
	}

	v, err := scram.NewVerifier(annPassword, 0)
	if err != nil {
		t.Fatal(err)
	}

	plus := "p=" + scram.BindingType + ",,"
	tests := []struct {
		name, user, mechanism, gs2 string
		cbind                      []byte
		code                       string // "" means scram.ErrAuthFailed
	}{
		{"forged_binding", "ann", scram.MechanismPlus, plus, forged, codeInvalidAuthSpec},
		{"forged_binding_unknown_user", "mallory", scram.MechanismPlus, plus, forged, codeInvalidAuthSpec},
		{"missing_binding_data", "ann", scram.MechanismPlus, plus, nil, codeInvalidAuthSpec},
		{"downgrade_flag_y", "ann", scram.Mechanism, "y,,", nil, codeInvalidAuthSpec},
		{"plus_without_binding_flag", "ann", scram.MechanismPlus, "n,,", nil, codeProtocolViolation},
		{"binding_flag_with_plain_mechanism", "ann", scram.Mechanism, plus, binding, codeProtocolViolation},
		{"other_binding_type", "ann", scram.MechanismPlus, "p=tls-exporter,,", binding, codeProtocolViolation},
		{"unknown_mechanism", "ann", "SCRAM-SHA-512", "n,,", nil, codeProtocolViolation},
		{"right_binding_wrong_proof", "ann", scram.MechanismPlus, plus, binding, ""},
		{"plain_wrong_proof", "ann", scram.Mechanism, "n,,", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{
				users:   map[string]scram.Verifier{"ann": v},
				mockKey: []byte("mock key"),
				tls:     cfg,
				log:     slog.New(slog.DiscardHandler),
			}

			sc, cc := net.Pipe()
			t.Cleanup(func() { _ = sc.Close(); _ = cc.Close() })

			conn := &clientConn{s: srv, nc: tls.Server(sc, cfg)}
			done := make(chan error, 1)
			go func() {
				if err := conn.nc.(*tls.Conn).Handshake(); err != nil {
					done <- err
					return
				}

				err := conn.authenticate(tt.user)
				_ = conn.nc.Close()
				done <- err
			}()

			tc := tls.Client(cc, &tls.Config{InsecureSkipVerify: true})
			fe := pgproto3.NewFrontend(tc, tc)
			if msg, err := exchange(t, fe, tt.mechanism, tt.gs2, tt.cbind); err == nil {
				t.Fatalf("the client received %#v, want the connection closed", msg)
			}

			err := <-done

			var pe *Error
			switch {
			case tt.code == "" && !errors.Is(err, scram.ErrAuthFailed):
				t.Fatalf("authenticate = %v, want scram.ErrAuthFailed", err)
			case tt.code != "" && (!errors.As(err, &pe) || pe.Code != tt.code || pe.Detail == ""):
				t.Fatalf("authenticate = %#v, want an *Error with SQLSTATE %s and a detail", err, tt.code)
			}
		})
	}
}
