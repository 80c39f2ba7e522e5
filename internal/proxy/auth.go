package proxy

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgtide/pgtide/internal/proxy/scram"
)

// authenticate runs a SCRAM-SHA-256 exchange for user against the
// proxy's users. Unknown users get the same exchange against a verifier
// no password matches, so the answer does not tell which users exist.
func (c *clientConn) authenticate(user string) error {
	v, ok := c.s.users[user]
	if !ok {
		v = scram.MockVerifier(user, c.s.mockKey)
	}

	if err := c.send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scram.Mechanism}}); err != nil {
		return err
	}

	typ, body, err := readMessage(c.conn(), maxAuthMessageLen)
	if err != nil {
		return err
	}

	if typ != 'p' {
		return fmt.Errorf("%w: expected SASLInitialResponse, got message %q", errProtocol, typ)
	}

	mech, first, err := parseSASLInitial(body)
	if err != nil {
		return err
	}

	if mech != scram.Mechanism {
		return fmt.Errorf("%w: unsupported SASL mechanism %q", errProtocol, mech)
	}

	srv := scram.NewServer(v)

	serverFirst, err := srv.First(first)
	if err != nil {
		return err
	}

	if err := c.send(&pgproto3.AuthenticationSASLContinue{Data: serverFirst}); err != nil {
		return err
	}

	typ, body, err = readMessage(c.conn(), maxAuthMessageLen)
	if err != nil {
		return err
	}

	if typ != 'p' {
		return fmt.Errorf("%w: expected SASLResponse, got message %q", errProtocol, typ)
	}

	serverFinal, err := srv.Final(body)
	if err != nil {
		return err
	}

	if !ok {
		return scram.ErrAuthFailed
	}

	if err := c.send(&pgproto3.AuthenticationSASLFinal{Data: serverFinal}); err != nil {
		return err
	}

	return c.send(&pgproto3.AuthenticationOk{})
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
