package scram

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newServer(t *testing.T, v Verifier, mechanism string, binding []byte) *Server {
	t.Helper()

	s, err := NewServer(v, mechanism, binding)
	if err != nil {
		t.Fatalf("NewServer(%s) = %v", mechanism, err)
	}

	return s
}

// client is the client side of one exchange, written from RFC 5802 for
// the tests. cbind is what it sends as channel binding data after the gs2
// header (nil for none).
type client struct {
	password string
	gs2      string
	cbind    []byte
	nonce    string
}

func (c client) first() []byte { return []byte(c.gs2 + "n=,r=" + c.nonce) }

// final returns the client-final-message answering serverFirst, and the
// server signature the client expects back.
func (c client) final(t *testing.T, serverFirst []byte) (msg []byte, serverSig string) {
	t.Helper()

	attrs := map[string]string{}
	for _, a := range strings.Split(string(serverFirst), ",") {
		attrs[a[:1]] = a[2:]
	}

	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil {
		t.Fatalf("server-first-message %q: salt: %v", serverFirst, err)
	}

	iter, err := strconv.Atoi(attrs["i"])
	if err != nil {
		t.Fatalf("server-first-message %q: iterations: %v", serverFirst, err)
	}

	salted, err := pbkdf2.Key(sha256.New, c.password, salt, iter, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}

	cbind := append([]byte(c.gs2), c.cbind...)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(cbind) + ",r=" + attrs["r"]
	authMessage := "n=,r=" + c.nonce + "," + string(serverFirst) + "," + withoutProof

	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	proof := make([]byte, sha256.Size)
	subtle.XORBytes(proof, clientKey, mac(stored[:], authMessage))

	msg = []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))
	serverSig = "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMessage))

	return msg, serverSig
}

func TestServerChannelBinding(t *testing.T) {
	v, err := NewVerifier("pencil", 0)
	if err != nil {
		t.Fatal(err)
	}

	binding := sha256.Sum256([]byte("the server's certificate"))
	forged := sha256.Sum256([]byte("a man in the middle's certificate"))
	plusHeader := "p=" + BindingType + ",,"

	tests := []struct {
		name      string
		mechanism string
		offered   []byte // binding data of the connection; nil: no TLS
		gs2       string
		cbind     []byte
		firstErr  error // expected from First
		finalErr  error // expected from Final
	}{
		{name: "plus", mechanism: MechanismPlus, offered: binding[:], gs2: plusHeader, cbind: binding[:]},
		{name: "plus_forged_binding", mechanism: MechanismPlus, offered: binding[:], gs2: plusHeader,
			cbind: forged[:], finalErr: ErrChannelBinding},
		{name: "plus_no_binding_data", mechanism: MechanismPlus, offered: binding[:], gs2: plusHeader,
			finalErr: ErrChannelBinding},
		{name: "plus_flag_n", mechanism: MechanismPlus, offered: binding[:], gs2: "n,,", firstErr: ErrProtocol},
		{name: "plus_flag_y", mechanism: MechanismPlus, offered: binding[:], gs2: "y,,", firstErr: ErrProtocol},
		{name: "plus_tls_unique", mechanism: MechanismPlus, offered: binding[:], gs2: "p=tls-unique,,",
			firstErr: ErrProtocol},
		{name: "plain_over_tls", mechanism: Mechanism, offered: binding[:], gs2: "n,,"},
		{name: "plain_downgraded", mechanism: Mechanism, offered: binding[:], gs2: "y,,",
			firstErr: ErrChannelBinding},
		{name: "plain_with_binding_flag", mechanism: Mechanism, offered: binding[:], gs2: plusHeader,
			firstErr: ErrProtocol},
		{name: "plain_flag_y_without_tls", mechanism: Mechanism, gs2: "y,,"},
		{name: "plain_flag_n_without_tls", mechanism: Mechanism, gs2: "n,,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, v, tt.mechanism, tt.offered)
			c := client{password: "pencil", gs2: tt.gs2, cbind: tt.cbind, nonce: "fyko+d2lbbFgONRv9qkxdawL"}

			serverFirst, err := s.First(c.first())
			if !errors.Is(err, tt.firstErr) || (tt.firstErr == nil && err != nil) {
				t.Fatalf("First(%q) = %v, want %v", c.first(), err, tt.firstErr)
			}

			if err != nil {
				var se *Error
				if !errors.As(err, &se) || se.Detail == "" {
					t.Fatalf("First(%q) = %#v, want a *scram.Error with a detail", c.first(), err)
				}

				return
			}

			final, wantSig := c.final(t, serverFirst)

			serverFinal, err := s.Final(final)
			if !errors.Is(err, tt.finalErr) || (tt.finalErr == nil && err != nil) {
				t.Fatalf("Final(%q) = %v, want %v", final, err, tt.finalErr)
			}

			if err == nil && string(serverFinal) != wantSig {
				t.Fatalf("Final(%q) = %q, want %q", final, serverFinal, wantSig)
			}
		})
	}
}

// TestServerDowngradedFlagInFinal checks that the c= attribute repeats
// the gs2 header: a client that sent "n" cannot claim "y" later.
func TestServerDowngradedFlagInFinal(t *testing.T) {
	v, err := NewVerifier("pencil", 0)
	if err != nil {
		t.Fatal(err)
	}

	s := newServer(t, v, Mechanism, nil)
	c := client{password: "pencil", gs2: "n,,", nonce: "abc"}

	serverFirst, err := s.First(c.first())
	if err != nil {
		t.Fatal(err)
	}

	c.gs2 = "y,,"
	final, _ := c.final(t, serverFirst)
	if _, err := s.Final(final); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Final(%q) after gs2 flag n = %v, want ErrProtocol", final, err)
	}
}

func TestNewServerMechanism(t *testing.T) {
	v, err := NewVerifier("pencil", 0)
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		mechanism string
		binding   []byte
	}{
		{MechanismPlus, nil},
		{"SCRAM-SHA-1", nil},
		{"scram-sha-256", []byte("x")},
		{"", nil},
	} {
		if _, err := NewServer(v, tt.mechanism, tt.binding); !errors.Is(err, ErrProtocol) {
			t.Errorf("NewServer(%q, binding %q) = %v, want ErrProtocol", tt.mechanism, tt.binding, err)
		}
	}
}

func TestTLSServerEndPoint(t *testing.T) {
	raw := []byte("DER bytes of a certificate")
	s256 := sha256.Sum256(raw)
	s384 := sha512.Sum384(raw)
	s512 := sha512.Sum512(raw)

	tests := []struct {
		alg  x509.SignatureAlgorithm
		want []byte // nil: undefined
	}{
		{x509.MD5WithRSA, s256[:]},
		{x509.SHA1WithRSA, s256[:]},
		{x509.ECDSAWithSHA1, s256[:]},
		{x509.SHA256WithRSA, s256[:]},
		{x509.SHA256WithRSAPSS, s256[:]},
		{x509.ECDSAWithSHA256, s256[:]},
		{x509.SHA384WithRSA, s384[:]},
		{x509.ECDSAWithSHA384, s384[:]},
		{x509.SHA512WithRSAPSS, s512[:]},
		{x509.ECDSAWithSHA512, s512[:]},
		{x509.PureEd25519, nil},
		{x509.MD2WithRSA, nil},
		{x509.UnknownSignatureAlgorithm, nil},
	}
	for _, tt := range tests {
		got, err := TLSServerEndPoint(&x509.Certificate{Raw: raw, SignatureAlgorithm: tt.alg})
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("TLSServerEndPoint(%v) = %x, want an error", tt.alg, got)
		case tt.want != nil && (err != nil || string(got) != string(tt.want)):
			t.Errorf("TLSServerEndPoint(%v) = %x, %v; want %x", tt.alg, got, err, tt.want)
		}
	}

	// A real certificate: a P-384 key signs with ECDSA and SHA-384.
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	want := sha512.Sum384(der)
	if got, err := TLSServerEndPoint(cert); err != nil || string(got) != string(want[:]) {
		t.Fatalf("TLSServerEndPoint(P-384 certificate) = %x, %v; want SHA-384 of its DER %x", got, err, want)
	}
}
