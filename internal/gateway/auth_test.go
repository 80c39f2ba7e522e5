package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func digest(tok string) string {
	d := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(d[:])
}

// TestAuth checks static tokens and JWTs: who is let in, what each grant
// lets through, and that every denial is 401 or 403 with a reason.
func TestAuth(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})

	e := newLogEnv(t, Config{
		Tokens: []Token{
			{Name: "full", SHA256: digest("full-secret")},
			{Name: "limited", SHA256: digest("limited-secret"), Grant: Grant{
				Sources: []string{"auth"}, Tables: []string{"public.a"},
				Columns: []string{"id", "v"}, Where: "new.id < 3",
			}},
		},
		JWT:         JWTConfig{HS256Secret: "hs-secret", RS256PublicKey: string(pubPEM), Issuer: "test"},
		CORSOrigins: []string{"https://app.example"},
	})
	s := newSynth(t, e, "auth")
	s.tx(synthOp{"a", ins, 1, "x"}, synthOp{"a", ins, 2, "y"}, synthOp{"a", ins, 5, "z"}, synthOp{"b", ins, 3, "z"})

	hs := func(claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("hs-secret"))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rs := func(claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	future := time.Now().Add(time.Hour).Unix()
	tableA := map[string]any{"tables": []string{"public.a"}}

	q := func(kv ...string) url.Values {
		v := url.Values{"source": {"auth"}, "from": {"beginning"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	denials := []struct {
		name, token string
		q           url.Values
		status      int
		reason      string
	}{
		{"no_token", "", q(), 401, "missing bearer token"},
		{"bad_token", "nope", q(), 401, "invalid token"},
		{"bad_jwt_signature", hs(jwt.MapClaims{"iss": "test", "pgtide": tableA})[:20] + "x.y.z", q(), 401, "invalid token"},
		{"expired_jwt", hs(jwt.MapClaims{"iss": "test", "exp": time.Now().Add(-time.Hour).Unix(), "pgtide": tableA}), q(), 401, "expired"},
		{"wrong_issuer", hs(jwt.MapClaims{"iss": "other", "exp": future, "pgtide": tableA}), q(), 401, "invalid token"},
		{"no_claim", hs(jwt.MapClaims{"iss": "test", "exp": future}), q(), 403, "no pgtide claim"},
		{"jwt_table", hs(jwt.MapClaims{"iss": "test", "exp": future, "pgtide": tableA}), q("tables", "public.b"), 403, `may not read table "public.b"`},
		{"limited_table", "limited-secret", q("tables", "public.b"), 403, `may not read table "public.b"`},
		{"limited_column", "limited-secret", q("columns", "n"), 403, `may not read column "n"`},
		{"limited_source", "limited-secret", url.Values{"source": {"other"}}, 403, `may not read source "other"`},
	}
	for _, d := range denials {
		t.Run(d.name, func(t *testing.T) {
			code, ge := pollError(t, e, d.q, d.token)
			if code != d.status || !strings.Contains(ge.Message, d.reason) {
				t.Errorf("status %d %+v, want %d with %q", code, ge, d.status, d.reason)
			}
		})
	}

	allowed := []struct {
		name, token string
		q           url.Values
		want        string
	}{
		{"full", "full-secret", q(), "insert:1 insert:2 insert:5 insert:3 "},
		{"limited", "limited-secret", q(), "insert:1 insert:2 "},
		{"jwt_hs256", hs(jwt.MapClaims{"iss": "test", "exp": future, "pgtide": tableA}), q(), "insert:1 insert:2 insert:5 "},
		{"jwt_rs256", rs(jwt.MapClaims{"iss": "test", "exp": future, "pgtide": map[string]any{}}), q(), "insert:1 insert:2 insert:5 insert:3 "},
	}
	for _, a := range allowed {
		t.Run(a.name, func(t *testing.T) {
			got, _ := poll(t, e, a.q, a.token)
			if ids(got) != a.want {
				t.Errorf("got %s, want %s", ids(got), a.want)
			}
			if a.name == "limited" && len(got) > 0 && string(got[0].New) != `{"id":1,"v":"x"}` {
				t.Errorf("limited columns: new %s", got[0].New)
			}
		})
	}

	t.Run("access_token_param", func(t *testing.T) {
		v := q()
		v.Set("access_token", "full-secret")
		got, _ := poll(t, e, v, "")
		if len(got) != 4 {
			t.Errorf("got %s", ids(got))
		}
	})

	t.Run("cors_preflight", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, e.url+"/v1/changes", nil)
		req.Header.Set("Origin", "https://app.example")
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})
}
