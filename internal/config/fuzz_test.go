package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse checks that Parse never panics, that every failure is a
// *ValidationError with at least one explained problem, and that a
// configuration it accepts survives a round trip through YAML unchanged.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		fullConfig,
		"",
		"log: {level: debug}\n",
		srcYAML("heartbeat_interval: off", "retention: {max_age: 0}"),
		srcYAML("tables: [public.orders, 'x?']", "exclude_tables: ['*_tmp']"),
		"sources:\n  - &a {name: a, dsn: 'host=h dbname=a'}\n  - <<: *a\n    name: b\n    slot: b\n    publication: b\n",
		"a: &x [*x]\n",
		"log: [\n",
		"- 1\n",
		"nats: {url: 'nats://u:p@h:4222,tls://h2', replicas: 3, confirm_delay: 1s}\n",
		"sources: [{name: x, dsn: 'postgres://u:p@h:abc/db', max_retained_wal: 1.5GB}]\n",
	} {
		f.Add([]byte(seed))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("Parse error %T %q, want a non-empty *ValidationError", err, err)
			}
			for _, fe := range ve.Errors {
				if strings.TrimSpace(fe.Message) == "" {
					t.Fatalf("problem at %q without a message", fe.Path)
				}
			}
			return
		}

		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate rejects: %v", err)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c2, err := Parse(out, "roundtrip.yaml")
		if err != nil {
			t.Fatalf("Parse(Marshal(c)): %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(c2)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the config:\n%s\n---\n%s", out, out2)
		}
	})
}
