// Package scram is the server side of SCRAM-SHA-256 authentication (RFC
// 5802, RFC 7677) as PostgreSQL uses it in SASL exchanges, without
// channel binding.
//
// A [Verifier] is what a server stores instead of a password; it has the
// same text form as PostgreSQL's pg_authid.rolpassword
// ("SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64
// fields). A [Server] runs one exchange: [Server.First] answers the
// client-first-message, [Server.Final] checks the client's proof and
// returns the server signature.
//
// Passwords are used as given: unlike PostgreSQL, no SASLprep
// normalization is applied, which makes no difference for ASCII
// passwords.
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mechanism is the SASL mechanism name.
const Mechanism = "SCRAM-SHA-256"

// DefaultIterations is the PBKDF2 iteration count of new verifiers,
// PostgreSQL's default.
const DefaultIterations = 4096

// ErrAuthFailed is returned by [Server.Final] when the proof is wrong.
var ErrAuthFailed = errors.New("scram: authentication failed")

// Verifier is the stored form of a password.
type Verifier struct {
	Iterations int
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// NewVerifier derives a verifier from password with a random 16-byte
// salt and iterations rounds (DefaultIterations when zero or less).
func NewVerifier(password string, iterations int) (Verifier, error) {
	if iterations <= 0 {
		iterations = DefaultIterations
	}

	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return Verifier{}, fmt.Errorf("scram: salt: %w", err)
	}

	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return Verifier{}, fmt.Errorf("scram: derive key: %w", err)
	}

	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)

	return Verifier{
		Iterations: iterations,
		Salt:       salt,
		StoredKey:  stored[:],
		ServerKey:  mac(salted, "Server Key"),
	}, nil
}

// ParseVerifier parses the PostgreSQL text form of a verifier.
func ParseVerifier(s string) (Verifier, error) {
	rest, ok := strings.CutPrefix(s, Mechanism+"$")
	if !ok {
		return Verifier{}, errors.New("scram: verifier does not start with " + Mechanism + "$")
	}

	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return Verifier{}, errors.New("scram: verifier lacks keys")
	}

	iterText, saltText, ok1 := strings.Cut(params, ":")
	storedText, serverText, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		return Verifier{}, errors.New("scram: malformed verifier")
	}

	iter, err := strconv.Atoi(iterText)
	if err != nil || iter <= 0 {
		return Verifier{}, fmt.Errorf("scram: bad iteration count %q", iterText)
	}

	v := Verifier{Iterations: iter}
	for _, f := range []struct {
		dst  *[]byte
		text string
		n    int
	}{{&v.Salt, saltText, 0}, {&v.StoredKey, storedText, sha256.Size}, {&v.ServerKey, serverText, sha256.Size}} {
		b, err := base64.StdEncoding.DecodeString(f.text)
		if err != nil || len(b) == 0 || (f.n > 0 && len(b) != f.n) {
			return Verifier{}, errors.New("scram: malformed base64 field in verifier")
		}

		*f.dst = b
	}

	return v, nil
}

// String returns the PostgreSQL text form of v.
func (v Verifier) String() string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("%s$%d:%s$%s:%s", Mechanism, v.Iterations, b64(v.Salt), b64(v.StoredKey), b64(v.ServerKey))
}

// MockVerifier returns a verifier no password matches, with a salt that
// depends only on user and secret. Running a full exchange against it for
// unknown users hides which users exist.
func MockVerifier(user string, secret []byte) Verifier {
	salt := sha256.Sum256(append(append([]byte{}, secret...), user...))
	v := Verifier{Iterations: DefaultIterations, Salt: salt[:16], StoredKey: make([]byte, 32), ServerKey: make([]byte, 32)}
	_, _ = rand.Read(v.StoredKey)
	_, _ = rand.Read(v.ServerKey)

	return v
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))

	return h.Sum(nil)
}

// Server runs one SCRAM exchange. It is not safe for concurrent use.
type Server struct {
	v Verifier

	// serverNonce, when set (tests), replaces the random server nonce.
	serverNonce string

	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
}

// NewServer returns a server checking against v.
func NewServer(v Verifier) *Server {
	return &Server{v: v}
}

// First parses the client-first-message and returns the
// server-first-message.
func (s *Server) First(clientFirst []byte) ([]byte, error) {
	msg := string(clientFirst)

	// gs2-header: channel-binding flag, then an optional authzid.
	var cbFlag string
	switch {
	case strings.HasPrefix(msg, "n,"), strings.HasPrefix(msg, "y,"):
		cbFlag, msg = msg[:1], msg[2:]
	case strings.HasPrefix(msg, "p="):
		return nil, errors.New("scram: channel binding is not supported")
	default:
		return nil, errors.New("scram: malformed gs2 header")
	}

	authzid, bare, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, errors.New("scram: malformed gs2 header")
	}

	if authzid != "" {
		return nil, errors.New("scram: authorization identities are not supported")
	}

	// client-first-message-bare: [reserved-mext ","] username "," nonce.
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, errors.New("scram: malformed client-first-message")
	}

	clientNonce := attrs[1][2:]
	if clientNonce == "" || !printable(clientNonce) {
		return nil, errors.New("scram: malformed client nonce")
	}

	serverNonce := s.serverNonce
	if serverNonce == "" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("scram: nonce: %w", err)
		}

		serverNonce = base64.RawStdEncoding.EncodeToString(b)
	}

	s.gs2Header = cbFlag + ",,"
	s.clientFirstBare = bare
	s.nonce = clientNonce + serverNonce
	s.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", s.nonce, base64.StdEncoding.EncodeToString(s.v.Salt), s.v.Iterations)

	return []byte(s.serverFirst), nil
}

// Final checks the client-final-message and returns the
// server-final-message. A wrong proof returns [ErrAuthFailed]; malformed
// input another error.
func (s *Server) Final(clientFinal []byte) ([]byte, error) {
	if s.nonce == "" {
		return nil, errors.New("scram: client-final-message before client-first-message")
	}

	msg := string(clientFinal)

	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, errors.New("scram: client-final-message lacks a proof")
	}

	withoutProof, proofText := msg[:i], msg[i+3:]

	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, errors.New("scram: malformed client-final-message")
	}

	cb, err := base64.StdEncoding.DecodeString(attrs[0][2:])
	if err != nil || string(cb) != s.gs2Header {
		return nil, errors.New("scram: channel binding data does not match")
	}

	if attrs[1][2:] != s.nonce {
		return nil, errors.New("scram: nonce mismatch")
	}

	proof, err := base64.StdEncoding.DecodeString(proofText)
	if err != nil || len(proof) != sha256.Size {
		return nil, errors.New("scram: malformed proof")
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
