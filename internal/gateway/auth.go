package gateway

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pgtide/pgtide/internal/changelog"
)

// identity is an authenticated caller and what it may read.
type identity struct {
	name  string
	grant Grant
	// where is the grant's compiled predicate, nil without one.
	where *predicate
}

// anonymous is the identity of every caller when no credential is
// configured.
var anonymous = &identity{name: "anonymous"}

// authenticator checks bearer tokens. It is safe for concurrent use.
type authenticator struct {
	tokens []staticToken
	jwt    JWTConfig
	rsaKey *rsa.PublicKey
}

type staticToken struct {
	digest [sha256.Size]byte
	id     *identity
}

func newAuthenticator(cfg Config) (*authenticator, error) {
	a := &authenticator{jwt: cfg.JWT}
	for i, t := range cfg.Tokens {
		d, err := hex.DecodeString(strings.TrimSpace(t.SHA256))
		if err != nil || len(d) != sha256.Size {
			return nil, fmt.Errorf("gateway: token %d (%s): sha256 must be 64 hex digits", i+1, t.Name)
		}
		id, err := newIdentity(t.Name, t.Grant)
		if err != nil {
			return nil, fmt.Errorf("gateway: token %d (%s): %w", i+1, t.Name, err)
		}
		st := staticToken{id: id}
		copy(st.digest[:], d)
		a.tokens = append(a.tokens, st)
	}
	if cfg.JWT.RS256PublicKey != "" {
		k, err := jwt.ParseRSAPublicKeyFromPEM([]byte(cfg.JWT.RS256PublicKey))
		if err != nil {
			return nil, fmt.Errorf("gateway: jwt rs256 public key: %w", err)
		}
		a.rsaKey = k
	}
	return a, nil
}

func newIdentity(name string, g Grant) (*identity, error) {
	id := &identity{name: name, grant: g}
	for _, s := range g.Sources {
		if err := changelog.ValidateSource(s); err != nil {
			return nil, fmt.Errorf("grant source %q: %w", s, err)
		}
	}
	for _, t := range g.Tables {
		if _, err := changelog.TableFilter("x", t); err != nil {
			return nil, fmt.Errorf("grant table %q: %w", t, err)
		}
	}
	if g.Where != "" {
		p, err := compilePredicate(g.Where)
		if err != nil {
			return nil, fmt.Errorf("grant %w", err)
		}
		id.where = p
	}
	return id, nil
}

// enabled reports whether any credential is configured.
func (a *authenticator) enabled() bool {
	return len(a.tokens) > 0 || a.jwt.HS256Secret != "" || a.rsaKey != nil
}

// bearer returns the token of r: the Authorization header's bearer token,
// or the access_token query parameter, which browsers need for
// EventSource and WebSocket.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return "\x00invalid scheme " + scheme
	}
	return r.URL.Query().Get("access_token")
}

// authenticate returns the identity of token. The error is an *Error with
// code unauthorized and the reason.
func (a *authenticator) authenticate(token string) (*identity, error) {
	if !a.enabled() {
		return anonymous, nil
	}
	if token == "" {
		return nil, errorf(CodeUnauthorized, "missing bearer token (Authorization: Bearer <token>, or access_token=<token>)")
	}
	if rest, ok := strings.CutPrefix(token, "\x00invalid scheme "); ok {
		return nil, errorf(CodeUnauthorized, "authorization scheme %q is not Bearer", rest)
	}

	// Compare against every static token, in constant time, so timing
	// tells nothing about which digest came close.
	digest := sha256.Sum256([]byte(token))
	var found *identity
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(digest[:], a.tokens[i].digest[:]) == 1 {
			found = a.tokens[i].id
		}
	}
	if found != nil {
		return found, nil
	}

	if strings.Count(token, ".") == 2 && (a.jwt.HS256Secret != "" || a.rsaKey != nil) {
		return a.verifyJWT(token)
	}
	return nil, errorf(CodeUnauthorized, "invalid token")
}

// claims are the JWT claims the gateway reads.
type claims struct {
	jwt.RegisteredClaims
	Pgtide *Grant `json:"pgtide"`
}

func (a *authenticator) verifyJWT(token string) (*identity, error) {
	opts := []jwt.ParserOption{jwt.WithValidMethods(a.methods())}
	if a.jwt.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.jwt.Issuer))
	}
	if a.jwt.Audience != "" {
		opts = append(opts, jwt.WithAudience(a.jwt.Audience))
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case "HS256":
			return []byte(a.jwt.HS256Secret), nil
		case "RS256":
			return a.rsaKey, nil
		}
		return nil, fmt.Errorf("algorithm %s is not accepted", t.Method.Alg())
	}, opts...)
	if err != nil {
		return nil, errorf(CodeUnauthorized, "invalid token: %v", err)
	}
	if c.Pgtide == nil {
		return nil, errorf(CodeForbidden, "token has no pgtide claim (use {} to grant everything)")
	}
	name := c.Subject
	if name == "" {
		name = "jwt"
	}
	id, err := newIdentity(name, *c.Pgtide)
	if err != nil {
		return nil, errorf(CodeForbidden, "token's pgtide claim: %v", err)
	}
	return id, nil
}

func (a *authenticator) methods() []string {
	var m []string
	if a.jwt.HS256Secret != "" {
		m = append(m, "HS256")
	}
	if a.rsaKey != nil {
		m = append(m, "RS256")
	}
	return m
}

// allowSource checks that id may read source.
func (id *identity) allowSource(source string) error {
	if len(id.grant.Sources) > 0 && !slices.Contains(id.grant.Sources, source) {
		return errorf(CodeForbidden, "token %s may not read source %q", id.name, source)
	}
	return nil
}

// allowGroup checks that id may join group.
func (id *identity) allowGroup(group string) error {
	if len(id.grant.Groups) > 0 && !slices.Contains(id.grant.Groups, group) {
		return errorf(CodeForbidden, "token %s may not join consumer group %q", id.name, group)
	}
	return nil
}

// tableFilters returns the filter subjects a subscription of source to
// tables may use: the requested ones when each falls within the grant,
// the grant's when none is requested.
func (id *identity) tableFilters(source string, tables []string) ([]string, error) {
	var granted []string
	for _, t := range id.grant.Tables {
		f, err := changelog.TableFilter(source, t)
		if err != nil {
			return nil, errorf(CodeForbidden, "token %s: grant table %q: %v", id.name, t, err)
		}
		granted = append(granted, f)
	}

	var out []string
	for _, t := range tables {
		f, err := changelog.TableFilter(source, t)
		if err != nil {
			return nil, errorf(CodeInvalidOption, "table %q: %v", t, err)
		}
		if len(granted) > 0 && !slices.ContainsFunc(granted, func(g string) bool { return subjectCovers(g, f) }) {
			return nil, errorf(CodeForbidden, "token %s may not read table %q", id.name, t)
		}
		out = append(out, f)
	}
	if len(tables) == 0 {
		out = granted
	}
	return out, nil
}

// columns returns the projection of a subscription asking for cols.
func (id *identity) columns(cols []string) (projection, error) {
	allowed := id.grant.Columns
	if len(cols) == 0 && len(allowed) == 0 {
		return nil, nil
	}
	if len(cols) == 0 {
		cols = allowed
	}
	p := make(projection, len(cols))
	for _, c := range cols {
		if len(allowed) > 0 && !slices.Contains(allowed, c) {
			return nil, errorf(CodeForbidden, "token %s may not read column %q", id.name, c)
		}
		p[c] = true
	}
	return p, nil
}

// grantProjection is the projection the grant alone allows; predicates
// see these columns.
func (id *identity) grantProjection() projection {
	if len(id.grant.Columns) == 0 {
		return nil
	}
	p := make(projection, len(id.grant.Columns))
	for _, c := range id.grant.Columns {
		p[c] = true
	}
	return p
}
