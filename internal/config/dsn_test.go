package config

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestRedactedDSN(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://u:pw@h:5432/db", "postgres://u:xxxxx@h:5432/db"},
		{"postgresql://u:pw@h/db?sslmode=require", "postgresql://u:xxxxx@h/db?sslmode=require"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"postgres://h/db", "postgres://h/db"},
		{"postgres://u:@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:p@ss@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:pa/ss@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:pa/s?s@h/db", "postgres://u:xxxxx@h/db"},
		{"postgres://u:pw@h:5432/db?application_name=me@x", "postgres://u:xxxxx@h:5432/db?application_name=me@x"},
		{"postgres://h/db?password=pw&sslpassword=k&sslmode=require",
			"postgres://h/db?password=xxxxx&sslpassword=xxxxx&sslmode=require"},
		{"postgres://[::1]:5432/db?user=u&password=p%40w", "postgres://[::1]:5432/db?user=u&password=xxxxx"},
		{"host=h password=pw dbname=db", "host=h password=xxxxx dbname=db"},
		{"host=h password = 'p w\\' x' dbname=db", "host=h password = xxxxx dbname=db"},
		{"host=h password='unterminated dbname=db", "host=h password=xxxxx"},
		{"host=h pass word=pw", "host=h pass word=xxxxx"},
		{"host=h PASSWORD=pw", "host=h PASSWORD=xxxxx"},
		{"host=h sslpassword=pw", "host=h sslpassword=xxxxx"},
		{"host=h dbname=db", "host=h dbname=db"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := (SourceConfig{DSN: tt.dsn}).RedactedDSN(); got != tt.want {
			t.Errorf("RedactedDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
	}
}

// TestDSNPasswordNeverShown puts passwords into valid and broken connection
// strings and checks that neither RedactedDSN nor any error shows them.
func TestDSNPasswordNeverShown(t *testing.T) {
	passwords := []string{"s3cr3t-Pw", "p@ss:w0rd", "sla/sh?q", "quo'te pw", "pct%41pw"}
	forms := []func(pw string) string{
		func(pw string) string { return "postgres://u:" + url.PathEscape(pw) + "@h:5432/db" },
		func(pw string) string { return "postgres://u:" + url.PathEscape(pw) + "@h:abc/db" },
		func(pw string) string { return "postgres://u:" + pw + "@h/db" },
		func(pw string) string { return "postgres://u:" + pw + "@h:5432/db?sslmode=bogus" },
		func(pw string) string { return "postgres://u:" + pw + "@h:5432/db?connect_timeout=x" },
		func(pw string) string { return "postgres://h/db?password=" + url.QueryEscape(pw) + "&port=x" },
		func(pw string) string { return "postgres://u:" + pw + "@[::1/db" },
		func(pw string) string { return "POSTGRES://u:" + pw + "@h/db" },
		func(pw string) string { return "host=h port=x password='" + strings.ReplaceAll(pw, "'", `\'`) + "'" },
		func(pw string) string {
			return "host=h password='" + strings.ReplaceAll(pw, "'", `\'`) + "' sslmode=bogus"
		},
		func(pw string) string { return "host=h password='" + pw },
		func(pw string) string { return "host=h pass word=" + pw },
		func(pw string) string {
			return "host=h sslpassword=" + strings.ReplaceAll(pw, " ", `\ `) + " port=99999999"
		},
	}
	for _, pw := range passwords {
		for i, form := range forms {
			dsn := form(pw)
			shown := func(what, s string) {
				t.Helper()
				for _, secret := range []string{pw, url.PathEscape(pw), url.QueryEscape(pw)} {
					if strings.Contains(s, secret) {
						t.Errorf("form %d, dsn %q: %s shows the password:\n%s", i, dsn, what, s)
					}
				}
			}

			shown("RedactedDSN", SourceConfig{DSN: dsn}.RedactedDSN())

			doc, err := yaml.Marshal(map[string]any{"sources": []map[string]string{{"name": "shop", "dsn": dsn}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(doc, "pgtide.yaml"); err != nil {
				shown("Parse error", err.Error())
			}
			if _, err := SourceNameFromDSN(dsn); err != nil {
				shown("SourceNameFromDSN error", err.Error())
			}
			c := Config{}
			if err := c.ApplyEnv(envMap(map[string]string{"PGTIDE_SOURCE_DSN": dsn})); err != nil {
				shown("ApplyEnv error", err.Error())
			}
		}
	}
}

func TestSourceNameFromDSN(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://u:pw@h/shop", "shop"},
		{"postgres://h/Shop-DB", "shop-db"},
		{"postgres://h/my%20db", "my_db"},
		{"host=h dbname=café", "caf_"},
		{"host=h dbname=2024_sales", "db_2024_sales"},
		{"host=h dbname=_x", "db__x"},
		{"host=h dbname=" + strings.Repeat("abcdefghij", 5), "abcdefghijabcdefghijabcdefghijab"},
		{"host=h user=Alice", "alice"}, // no database: the user name, as PostgreSQL does
	}
	for _, tt := range tests {
		got, err := SourceNameFromDSN(tt.dsn)
		if err != nil || got != tt.want {
			t.Errorf("SourceNameFromDSN(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
			continue
		}
		if !validSourceName(got) {
			t.Errorf("SourceNameFromDSN(%q) = %q, not a valid source name", tt.dsn, got)
		}
	}

	for _, dsn := range []string{"", "not a dsn", "postgres://u:pw@h:x/db"} {
		if got, err := SourceNameFromDSN(dsn); err == nil {
			t.Errorf("SourceNameFromDSN(%q) = %q, want an error", dsn, got)
		}
	}
}

func ExampleSourceConfig_RedactedDSN() {
	s := SourceConfig{DSN: "postgres://pgtide:hunter2@db.example.com:5432/shop"}
	fmt.Println(s.RedactedDSN())
	// Output: postgres://pgtide:xxxxx@db.example.com:5432/shop
}
