// Package scram is the server side of SCRAM-SHA-256 and
// SCRAM-SHA-256-PLUS authentication (RFC 5802, RFC 7677) as PostgreSQL
// uses them in SASL exchanges
// (https://www.postgresql.org/docs/current/sasl-authentication.html).
//
// A [Verifier] is what a server stores instead of a password; it has the
// same text form as PostgreSQL's pg_authid.rolpassword
// ("SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64
// fields). A [Server] runs one exchange: [Server.First] answers the
// client-first-message, [Server.Final] checks the client's proof and
// returns the server signature.
//
// # Channel binding
//
// Over TLS a server offers [MechanismPlus] as well, which binds the
// exchange to the TLS connection with the tls-server-end-point data of its
// certificate ([TLSServerEndPoint]): a proof relayed by a man in the middle,
// who holds another certificate, does not verify. The server refuses a
// client that announces channel binding support while believing the
// server has none (gs2 flag "y" where [MechanismPlus] was offered), since
// only a downgrade by an attacker explains that.
//
// Passwords are used as given: unlike PostgreSQL, no SASLprep
// normalization is applied, which makes no difference for ASCII
// passwords.
package scram

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SASL mechanism names.
const (
	// Mechanism is SCRAM-SHA-256 without channel binding.
	Mechanism = "SCRAM-SHA-256"

	// MechanismPlus is SCRAM-SHA-256 with channel binding, offered over
	// TLS only.
	MechanismPlus = "SCRAM-SHA-256-PLUS"
)

// DefaultIterations is the PBKDF2 iteration count of new verifiers,
// PostgreSQL's default.
const DefaultIterations = 4096

// Kinds of failed exchanges. errors.Is matches an error returned by
// [NewServer], [Server.First] or [Server.Final] against one of them.
var (
	// ErrAuthFailed is a wrong proof: the client does not know the
	// password. PostgreSQL answers SQLSTATE 28P01.
	ErrAuthFailed = errors.New("scram: authentication failed")

	// ErrProtocol is a client that broke the protocol: a malformed
	// message, an unknown mechanism, a channel binding flag that does not
	// fit the mechanism. PostgreSQL answers SQLSTATE 08P01.
	ErrProtocol = errors.New("scram: malformed SCRAM message")

	// ErrChannelBinding is channel binding data that does not match the
	// connection, or a client that believes the server offers no channel
	// binding when it did. PostgreSQL answers SQLSTATE 28000.
	ErrChannelBinding = errors.New("scram: channel binding check failed")
)

// Error is a failed exchange other than a wrong password.
type Error struct {
	// Kind is [ErrProtocol] or [ErrChannelBinding].
	Kind error

	// Detail says what was wrong. It holds no secret, but may quote a
	// short piece of what the client sent.
	Detail string
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Detail }

// Unwrap returns e.Kind.
func (e *Error) Unwrap() error { return e.Kind }

func protocolError(format string, args ...any) error {
	return &Error{Kind: ErrProtocol, Detail: fmt.Sprintf(format, args...)}
}

// Server runs one SCRAM exchange. It is not safe for concurrent use.
type Server struct {
	v Verifier

	// plus is set when the client selected MechanismPlus; binding is the
	// connection's channel binding data, nil when MechanismPlus was not
	// offered.
	plus    bool
	binding []byte

	// serverNonce, when set (tests), replaces the random server nonce.
	serverNonce string

	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
}

// NewServer returns a server checking the client against v, for the
// mechanism the client selected. binding is the tls-server-end-point data
// of the connection ([TLSServerEndPoint]) when the server offered
// [MechanismPlus], and nil when it offered [Mechanism] alone. An unknown
// mechanism, or [MechanismPlus] when binding is nil, returns an
// [ErrProtocol] error.
func NewServer(v Verifier, mechanism string, binding []byte) (*Server, error) {
	s := &Server{v: v, binding: binding}

	switch mechanism {
	case Mechanism:
	case MechanismPlus:
		if binding == nil {
			return nil, protocolError("the client selected %s, which the server did not offer", MechanismPlus)
		}

		s.plus = true
	default:
		return nil, protocolError("the client selected an invalid SASL authentication mechanism %s",
			clip(mechanism))
	}

	return s, nil
}

// First parses the client-first-message and returns the
// server-first-message. A message that breaks the protocol returns an
// [ErrProtocol] error; a gs2 header with the "y" flag when the server
// offered [MechanismPlus] an [ErrChannelBinding] error.
func (s *Server) First(clientFirst []byte) ([]byte, error) {
	// gs2-header = gs2-cbind-flag "," [authzid] "," (RFC 5802, section 7).
	flag, rest, ok1 := strings.Cut(string(clientFirst), ",")
	authzid, bare, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return nil, protocolError("malformed gs2 header")
	}

	if err := s.checkFlag(flag); err != nil {
		return nil, err
	}

	if authzid != "" {
		return nil, protocolError("authorization identities are not supported")
	}

	// client-first-message-bare: [reserved-mext ","] username "," nonce.
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, protocolError("malformed client-first-message")
	}

	clientNonce := attrs[1][2:]
	if clientNonce == "" || !printable(clientNonce) {
		return nil, protocolError("malformed client nonce")
	}

	serverNonce := s.serverNonce
	if serverNonce == "" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("scram: nonce: %w", err)
		}

		serverNonce = base64.RawStdEncoding.EncodeToString(b)
	}

	s.gs2Header = flag + ",,"
	s.clientFirstBare = bare
	s.nonce = clientNonce + serverNonce
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d",
		s.nonce, base64.StdEncoding.EncodeToString(s.v.Salt), s.v.Iterations)

	return []byte(s.serverFirst), nil
}

// checkFlag checks the gs2-cbind-flag against the mechanism and what the
// server offered (RFC 5802, section 6).
func (s *Server) checkFlag(flag string) error {
	switch {
	case flag == "n" || flag == "y":
		if s.plus {
			return protocolError("the client selected %s, "+
				"but the SCRAM message includes no channel binding data", MechanismPlus)
		}

		// "y": the client could bind but believes the server cannot.
		// Having offered MechanismPlus, the server can: someone removed
		// it from the offer on the way.
		if flag == "y" && s.binding != nil {
			return &Error{Kind: ErrChannelBinding, Detail: "the client supports channel binding " +
				"but thinks the server does not, although the server offered " + MechanismPlus}
		}

	case strings.HasPrefix(flag, "p="):
		if !s.plus {
			return protocolError("the client selected %s without channel binding, "+
				"but the SCRAM message includes channel binding data", Mechanism)
		}

		if name := flag[2:]; name != BindingType {
			return protocolError("unsupported channel binding type %s: use %s", clip(name), BindingType)
		}

	default:
		return protocolError("malformed gs2 header")
	}

	return nil
}

// Final checks the client-final-message and returns the
// server-final-message. A wrong proof returns [ErrAuthFailed]; channel
// binding data other than the connection's an [ErrChannelBinding] error;
// any other malformed input an [ErrProtocol] error.
func (s *Server) Final(clientFinal []byte) ([]byte, error) {
	if s.nonce == "" {
		return nil, protocolError("client-final-message before client-first-message")
	}

	msg := string(clientFinal)

	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, protocolError("the client-final-message lacks a proof")
	}

	withoutProof, proofText := msg[:i], msg[i+3:]

	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, protocolError("malformed client-final-message")
	}

	// c= is base64 of the gs2 header, followed with MechanismPlus by the
	// channel binding data (RFC 5802, section 7). Comparing the encoded
	// text rejects non-canonical encodings as well.
	want := []byte(s.gs2Header)
	if s.plus {
		want = append(want, s.binding...)
	}

	if attrs[0][2:] != base64.StdEncoding.EncodeToString(want) {
		if s.plus {
			return nil, &Error{Kind: ErrChannelBinding,
				Detail: "the channel binding data does not match the server's TLS certificate"}
		}

		return nil, protocolError("unexpected channel binding attribute in client-final-message")
	}

	if attrs[1][2:] != s.nonce {
		return nil, protocolError("the nonce does not match")
	}

	proof, err := base64.StdEncoding.DecodeString(proofText)
	if err != nil || len(proof) != sha256.Size {
		return nil, protocolError("malformed proof")
	}

	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof

	clientSig := mac(s.v.StoredKey, authMessage)
	clientKey := make([]byte, sha256.Size)
	for i := range clientKey {
		clientKey[i] = proof[i] ^ clientSig[i]
	}

	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], s.v.StoredKey) != 1 {
		return nil, ErrAuthFailed
	}

	return []byte("v=" + base64.StdEncoding.EncodeToString(mac(s.v.ServerKey, authMessage))), nil
}

// printable reports whether s holds only printable ASCII other than ','.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}

	return true
}

// clip quotes a client-supplied name for an error message, cut to 64
// bytes.
func clip(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}

	return strconv.Quote(s)
}
