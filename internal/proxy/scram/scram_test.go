package scram

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
)

// rfc7677 is the example exchange of RFC 7677, section 3.
var rfc7677 = struct {
	password, salt, serverNonce        string
	clientFirst, serverFirst           string
	clientFinal, serverFinal, wrongPwd string
}{
	password:    "pencil",
	salt:        "W22ZaJ0SNY7soEsUEjb6gQ==",
	serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
	clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
	serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}

func verifierFor(t *testing.T, password, saltB64 string) Verifier {
	t.Helper()

	salt, _ := base64.StdEncoding.DecodeString(saltB64)
	salted, err := pbkdf2.Key(sha256.New, password, salt, 4096, 32)
	if err != nil {
		t.Fatal(err)
	}

	stored := sha256.Sum256(mac(salted, "Client Key"))

	return Verifier{Iterations: 4096, Salt: salt, StoredKey: stored[:], ServerKey: mac(salted, "Server Key")}
}

func TestServerRFC7677(t *testing.T) {
	v := verifierFor(t, rfc7677.password, rfc7677.salt)

	s := newServer(t, v, Mechanism, nil)
	s.serverNonce = rfc7677.serverNonce

	first, err := s.First([]byte(rfc7677.clientFirst))
	if err != nil || string(first) != rfc7677.serverFirst {
		t.Fatalf("First = %q, %v; want %q", first, err, rfc7677.serverFirst)
	}

	final, err := s.Final([]byte(rfc7677.clientFinal))
	if err != nil || string(final) != rfc7677.serverFinal {
		t.Fatalf("Final = %q, %v; want %q", final, err, rfc7677.serverFinal)
	}

	// The same exchange against another password fails.
	s = newServer(t, verifierFor(t, "crayon", rfc7677.salt), Mechanism, nil)
	s.serverNonce = rfc7677.serverNonce
	if _, err := s.First([]byte(rfc7677.clientFirst)); err != nil {
		t.Fatal(err)
	}

	if _, err := s.Final([]byte(rfc7677.clientFinal)); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("Final with the wrong password = %v, want ErrAuthFailed", err)
	}
}

func TestVerifierRoundTrip(t *testing.T) {
	v, err := NewVerifier("secret", 0)
	if err != nil {
		t.Fatal(err)
	}

	got, err := ParseVerifier(v.String())
	if err != nil || got.String() != v.String() {
		t.Fatalf("ParseVerifier(%q) = %q, %v", v.String(), got.String(), err)
	}

	for _, bad := range []string{"", "md5abc", "SCRAM-SHA-256$x:abc$a:b", "SCRAM-SHA-256$4096:$:", "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA"} {
		if _, err := ParseVerifier(bad); err == nil {
			t.Errorf("ParseVerifier(%q) = nil error, want one", bad)
		}
	}
}

func TestServerRejects(t *testing.T) {
	v := verifierFor(t, "pencil", rfc7677.salt)
	for _, first := range []string{"", "x,,n=u,r=abc", "p=tls-server-end-point,,n=u,r=abc", "n,a=admin,n=u,r=abc", "n,,n=u", "n,,n=u,r="} {
		if _, err := newServer(t, v, Mechanism, nil).First([]byte(first)); !errors.Is(err, ErrProtocol) {
			t.Errorf("First(%q) = %v, want ErrProtocol", first, err)
		}
	}

	s := newServer(t, v, Mechanism, nil)
	if _, err := s.First([]byte("n,,n=u,r=abc")); err != nil {
		t.Fatal(err)
	}

	for _, final := range []string{"", "c=biws", "c=eSws,r=abc,p=AAAA", "c=biws,r=other,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32))} {
		if _, err := s.Final([]byte(final)); !errors.Is(err, ErrProtocol) {
			t.Errorf("Final(%q) = %v, want ErrProtocol", final, err)
		}
	}
}

// FuzzServer runs arbitrary client messages through servers with and
// without channel binding: no input authenticates without the password,
// and a server bound to a channel accepts only a gs2 header naming it.
func FuzzServer(f *testing.F) {
	f.Add([]byte(rfc7677.clientFirst), []byte(rfc7677.clientFinal), false)
	f.Add([]byte("y,,n=,r=x"), []byte("c=eSws,r=x,p=AAAA"), false)
	f.Add([]byte("n,,m=ext,n=u,r=a"), []byte(",p="), false)
	f.Add([]byte("p=tls-server-end-point,,n=,r=abc"), []byte("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=abc,p=AAAA"), true)
	f.Add([]byte("p=tls-unique,,n=,r=abc"), []byte("c=,r=abc,p="), true)
	f.Add([]byte("p=,a=x,n=,r=abc"), []byte("c=biws,r=abc,p="), false)

	v, _ := NewVerifier("pencil", 1)
	binding := []byte("binding data of the connection")

	f.Fuzz(func(t *testing.T, first, final []byte, plus bool) {
		mech := Mechanism
		if plus {
			mech = MechanismPlus
		}

		s, err := NewServer(v, mech, binding)
		if err != nil {
			t.Fatalf("NewServer(%s) = %v", mech, err)
		}

		if _, err := s.First(first); err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("First(%q) = %v, want a *scram.Error", first, err)
			}

			return
		}

		if plus && s.gs2Header != "p="+BindingType+",," {
			t.Fatalf("First(%q) accepted gs2 header %q for %s", first, s.gs2Header, MechanismPlus)
		}

		if _, err := s.Final(final); err == nil {
			t.Fatalf("Final(%q) accepted a proof without the password", final)
		}
	})
}
