package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgtide/pgtide/internal/proxy/scram"
)

// authenticate runs a SCRAM exchange for user against the proxy's users.
// Unknown users get the same exchange against a verifier no password
// matches, so the answer does not tell which users exist.
//
// Over TLS, SCRAM-SHA-256-PLUS is offered first, binding the exchange to
// the proxy's certificate. A failure the client caused by breaking the
// protocol or the channel binding returns an [*Error] with PostgreSQL's
// SQLSTATE for it (08P01 or 28000); a wrong password returns
// [scram.ErrAuthFailed].
func (c *clientConn) authenticate(user string) error {
	v, ok := c.s.users[user]
	if !ok {
		v = scram.MockVerifier(user, c.s.mockKey)
	}

	binding := c.channelBinding()

	mechanisms := []string{scram.Mechanism}
	if binding != nil {
		mechanisms = []string{scram.MechanismPlus, scram.Mechanism}
	}

	if err := c.send(&pgproto3.AuthenticationSASL{AuthMechanisms: mechanisms}); err != nil {
		return err
	}

	typ, body, err := readMessage(c.conn(), maxAuthMessageLen)
	if err != nil {
		return err
	}

	if typ != 'p' {
		return authError(fmt.Errorf("%w: expected SASLInitialResponse, got message %q", errProtocol, typ))
	}

	mech, first, err := parseSASLInitial(body)
	if err != nil {
		return authError(err)
	}

	srv, err := scram.NewServer(v, mech, binding)
	if err != nil {
		return authError(err)
	}

	serverFirst, err := srv.First(first)
	if err != nil {
		return authError(err)
	}

	if err := c.send(&pgproto3.AuthenticationSASLContinue{Data: serverFirst}); err != nil {
		return err
	}

	typ, body, err = readMessage(c.conn(), maxAuthMessageLen)
	if err != nil {
		return err
	}

	if typ != 'p' {
		return authError(fmt.Errorf("%w: expected SASLResponse, got message %q", errProtocol, typ))
	}

	serverFinal, err := srv.Final(body)
	if err != nil {
		return authError(err)
	}

	if !ok {
		return scram.ErrAuthFailed
	}

	if err := c.send(&pgproto3.AuthenticationSASLFinal{Data: serverFinal}); err != nil {
		return err
	}

	return c.send(&pgproto3.AuthenticationOk{})
}

// authError turns a broken exchange into the error the client receives,
// with the SQLSTATE PostgreSQL sends for it. A wrong password and I/O
// errors are returned as they are.
func authError(err error) error {
	var se *scram.Error

	switch {
	case errors.As(err, &se) && errors.Is(se.Kind, scram.ErrChannelBinding):
		return &Error{Code: codeInvalidAuthSpec, Message: "SCRAM channel binding check failed",
			Detail: se.Detail}
	case errors.As(err, &se):
		return &Error{Code: codeProtocolViolation, Message: "malformed SCRAM message", Detail: se.Detail}
	case errors.Is(err, errProtocol):
		return newError(codeProtocolViolation, err.Error())
	default:
		return err
	}
}

// channelBinding returns the tls-server-end-point channel binding data of
// the connection, or nil when the client did not negotiate TLS or the
// binding is unavailable. Then SCRAM-SHA-256-PLUS is not offered, and a
// client that supports it rightly sends the gs2 flag "y".
func (c *clientConn) channelBinding() []byte {
	if _, ok := c.conn().(*tls.Conn); !ok {
		return nil
	}

	cert, err := presentedCertificate(c.s.tls)
	if err == nil {
		var data []byte
		if data, err = scram.TLSServerEndPoint(cert); err == nil {
			return data
		}
	}

	c.s.log.Debug("channel binding unavailable", "conn_id", c.id, "err", err)

	return nil
}

// presentedCertificate returns the certificate a TLS handshake with cfg
// presents to every client: its only certificate. When cfg picks one per
// client (GetCertificate, GetConfigForClient, several certificates), which
// one a handshake presented is not known after it, and an error is
// returned.
func presentedCertificate(cfg *tls.Config) (*x509.Certificate, error) {
	if cfg == nil || cfg.GetCertificate != nil || cfg.GetConfigForClient != nil ||
		len(cfg.Certificates) != 1 {
		return nil, errors.New("proxy: the TLS configuration may present one of several certificates")
	}

	tc := cfg.Certificates[0]
	if tc.Leaf != nil {
		return tc.Leaf, nil
	}

	if len(tc.Certificate) == 0 {
		return nil, errors.New("proxy: the TLS certificate is empty")
	}

	cert, err := x509.ParseCertificate(tc.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("proxy: parse TLS certificate: %w", err)
	}

	return cert, nil
}

// send writes one backend message to the client.
func (c *clientConn) send(msg pgproto3.BackendMessage) error {
	buf, err := msg.Encode(nil)
	if err != nil {
		return err
	}

	_, err = c.conn().Write(buf)

	return err
}
