package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

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
