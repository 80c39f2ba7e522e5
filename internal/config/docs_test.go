package config

import (
	"os"
	"strings"
	"testing"
)

// readReference returns docs/configuration.md.
func readReference(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("read the configuration reference: %v", err)
	}
	return string(b)
}

// TestReference_example parses the example file of the reference.
func TestReference_example(t *testing.T) {
	doc := readReference(t)
	_, after, ok := strings.Cut(doc, "## Example")
	if !ok {
		t.Fatal(`docs/configuration.md has no "## Example" section`)
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("the Example section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")

	c, err := Parse([]byte(block), "docs/configuration.md example")
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	if len(c.Sources) != 2 || c.Sources[1].Slot != "pgtide_crm_eu" {
		t.Errorf("example parsed to %+v, want two sources", c.Sources)
	}
}

// TestReference_everyKey checks that the reference documents every key.
func TestReference_everyKey(t *testing.T) {
	doc := readReference(t)
	for _, paths := range keyLocations() {
		for _, p := range paths {
			if !strings.Contains(doc, "`"+p+"`") {
				t.Errorf("docs/configuration.md does not document `%s`", p)
			}
		}
	}
	for _, env := range []string{EnvDataDir, EnvLogLevel, EnvLogFormat, EnvAdminListen,
		EnvNATSURL, EnvNATSCredsFile, EnvSourceDSN, EnvSourceName} {
		if !strings.Contains(doc, "`"+env+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", env)
		}
	}
}
