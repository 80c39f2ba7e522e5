package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgtide/pgtide/internal/proxy/scram"
)

// secretFile writes content to a new file and returns its path.
func secretFile(t *testing.T, name, content string) string {
	t.Helper()

	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}

	return path
}

func TestLoad_userSecretReferences(t *testing.T) {
	bob := secretFile(t, "bob", "bob-secret\n")
	carol := secretFile(t, "carol", annVerifier+"\r\n")
	path := writeFile(t, "proxy:\n  users:\n"+
		"    ann: env:PGTIDE_TEST_ANN\n"+
		"    bob: file:"+bob+"\n"+
		"    carol: \"file:"+carol+"\"\n"+
		"    dave: plain-password\n")

	c, err := load(path, envMap(map[string]string{"PGTIDE_TEST_ANN": "ann secret"}))
	if err != nil {
		t.Fatalf("load: %v", err)
	}

	want := map[string]string{
		"ann": "ann secret", "bob": "bob-secret", "carol": annVerifier, "dave": "plain-password",
	}
	if !reflect.DeepEqual(c.Proxy.Users, want) {
		t.Errorf("users after load = %q, want %q", c.Proxy.Users, want)
	}

	if _, err := scram.ParseVerifier(c.Proxy.Users["carol"]); err != nil {
		t.Errorf("carol's verifier read from a file does not parse: %v", err)
	}

	// The command line validates the loaded configuration again: resolved
	// secrets are not mistaken for references then.
	c.Proxy.Users["erin"] = "SCRAM-SHA-256$4096:bad"
	err = c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Path != "proxy.users.erin" {
		t.Fatalf("Validate after load = %v, want one problem at proxy.users.erin", err)
	}
}

// TestLoad_userSecretLooksLikeReference checks that a resolved secret
// that itself reads like a reference stays a secret when the loaded
// configuration is validated again.
func TestLoad_userSecretLooksLikeReference(t *testing.T) {
	path := writeFile(t, "proxy:\n  users:\n    ann: env:PGTIDE_TEST_ANN\n")

	c, err := load(path, envMap(map[string]string{"PGTIDE_TEST_ANN": "env:not a variable"}))
	if err != nil {
		t.Fatalf("load: %v", err)
	}

	if got := c.Proxy.Users["ann"]; got != "env:not a variable" {
		t.Errorf("ann's secret = %q, want the variable's value as it is", got)
	}

	if err := c.Validate(); err != nil {
		t.Errorf("Validate after load = %v, want nil", err)
	}
}

func TestLoad_userSecretErrors(t *testing.T) {
	const leaked = "topsecret"

	empty := secretFile(t, "empty", "\n\n")
	big := secretFile(t, "big", strings.Repeat("x", int(MaxSecretFileSize)+1))
	md5 := secretFile(t, "md5", "md5"+strings.Repeat("ab", 16)+"\n")
	badVerifier := secretFile(t, "verifier", "SCRAM-SHA-256$4096:"+leaked)
	missing := filepath.Join(t.TempDir(), "missing")

	tests := []struct {
		name, value string
		env         map[string]string
		phrase      string
	}{
		{"unset", "env:ANN_PW", nil,
			"reads its secret from environment variable ANN_PW, which is not set"},
		{"empty_variable", "env:ANN_PW", map[string]string{"ANN_PW": ""},
			"reads its secret from environment variable ANN_PW, which is empty"},
		{"bad_verifier_in_variable", "env:ANN_PW", map[string]string{"ANN_PW": "SCRAM-SHA-256$1:" + leaked},
			"is not a valid SCRAM-SHA-256 verifier: use the form of pg_authid.rolpassword, " +
				`"SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (read from environment variable ANN_PW)`},
		{"missing_file", "file:" + missing, nil, "cannot read the secret file: open " + missing},
		{"directory", "file:" + t.TempDir(), nil, "cannot read the secret file"},
		{"empty_file", "file:" + empty, nil, "the secret file " + empty + " is empty"},
		{"big_file", "file:" + big, nil, "the secret file " + big + " is larger than 64KiB"},
		{"md5_in_file", "file:" + md5, nil, "looks like an MD5 password hash, which SCRAM cannot use: " +
			"give a SCRAM-SHA-256 verifier or the password (read from file " + md5 + ")"},
		{"bad_verifier_in_file", "file:" + badVerifier, nil,
			"is not a valid SCRAM-SHA-256 verifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "proxy:\n  users:\n    bob: hunter2\n    ann: \""+tt.value+"\"\n")

			_, err := load(path, envMap(tt.env))
			wantAnnProblem(t, err, 4, tt.phrase)

			if strings.Contains(err.Error(), leaked) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

// TestParse_userSecretReferences checks that Parse, which reads neither
// the environment nor files, keeps references and checks their form.
func TestParse_userSecretReferences(t *testing.T) {
	c, err := Parse([]byte("proxy:\n  users: {ann: env:ANN_PW, bob: file:/run/secrets/bob}\n"), "t.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	want := map[string]string{"ann": "env:ANN_PW", "bob": "file:/run/secrets/bob"}
	if !reflect.DeepEqual(c.Proxy.Users, want) {
		t.Errorf("users = %q, want the references as written %q", c.Proxy.Users, want)
	}

	tests := []struct {
		name, value, phrase string
	}{
		{"env_empty_name", "env:", `"" is not an environment variable name: write env: followed by letters`},
		{"env_digit", "env:1PW", `"1PW" is not an environment variable name`},
		{"env_dash", "env:ANN-PW", `"ANN-PW" is not an environment variable name`},
		{"file_empty", "file:", "names no file: write file: followed by the path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("proxy:\n  users:\n    ann: \""+tt.value+"\"\n"), "t.yaml")
			wantAnnProblem(t, err, 3, tt.phrase)
		})
	}
}

// wantAnnProblem checks that err holds exactly one problem, at
// proxy.users.ann on line, whose message contains phrase.
func wantAnnProblem(t *testing.T, err error, line int, phrase string) {
	t.Helper()

	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errors) != 1 {
		t.Fatalf("got %v, want one problem", err)
	}

	fe := ve.Errors[0]
	if fe.Path != "proxy.users.ann" || fe.Line != line || !strings.Contains(fe.Message, phrase) {
		t.Errorf("problem = line %d %q: %q\nwant line %d proxy.users.ann with %q",
			fe.Line, fe.Path, fe.Message, line, phrase)
	}
}
