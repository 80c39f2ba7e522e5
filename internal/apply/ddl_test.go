package apply

import (
	"strings"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"CREATE TABLE a (x int); INSERT INTO a VALUES (1)", []string{"CREATE TABLE a (x int)", " INSERT INTO a VALUES (1)"}},
		{"SELECT 'a;b'; SELECT \"x;y\"", []string{"SELECT 'a;b'", " SELECT \"x;y\""}},
		{"CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql;", []string{"CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $fn$ LANGUAGE sql"}},
		{"SELECT E'it\\'s;'; -- c;\nSELECT 1 /* a; /* b; */ c; */", []string{"SELECT E'it\\'s;'", " -- c;\nSELECT 1 /* a; /* b; */ c; */"}},
		{"SELECT 'it''s;'", []string{"SELECT 'it''s;'"}},
		{"  ;  ", []string{"  "}},
	}
	for _, tt := range tests {
		got := splitStatements(tt.in)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("splitStatements(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClassifyStatement(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		action stmtAction
	}{
		{"ALTER TABLE a ADD COLUMN b int", "ALTER TABLE a ADD COLUMN b int", actionRun},
		{"create index concurrently if not exists i on a (b)", "create index if not exists i on a (b)", actionRun},
		{"CREATE UNIQUE INDEX CONCURRENTLY i ON a (b)", "CREATE UNIQUE INDEX i ON a (b)", actionRun},
		{"DROP INDEX CONCURRENTLY i", "DROP INDEX i", actionRun},
		{"REINDEX (VERBOSE) TABLE CONCURRENTLY a", "REINDEX (VERBOSE) TABLE a", actionRun},
		{"-- note\nINSERT INTO a VALUES (1)", "", actionDML},
		{"with x as (delete from a returning *) select 1", "", actionDML},
		{"BEGIN", "", actionTxControl},
		{"commit", "", actionTxControl},
		{"SET search_path = x, public", "SET LOCAL search_path = x, public", actionRun},
		{"SET SESSION search_path = x", "SET LOCAL search_path = x", actionRun},
		{"CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p", "", actionUnsupported},
		{"DO $$ BEGIN EXECUTE 'CREATE TABLE z ()'; END $$", "DO $$ BEGIN EXECUTE 'CREATE TABLE z ()'; END $$", actionRun},
		{"  ", "", actionEmpty},
	}
	for _, tt := range tests {
		got, action := classifyStatement(tt.in)
		if got != tt.want || action != tt.action {
			t.Errorf("classifyStatement(%q) = %q, %q; want %q, %q", tt.in, got, action, tt.want, tt.action)
		}
	}
}

func TestCompatibleType(t *testing.T) {
	tests := []struct {
		src, dst string
		want     bool
	}{
		{"numeric(10,2)", "numeric(12,4)", true},
		{"timestamp(3) with time zone", "timestamp with time zone", true},
		{"mood", "public.mood", true},
		{"integer", "bigint", true},
		{"bigint", "integer", false},
		{"text", "integer", false},
		{"character varying(10)[]", "character varying[]", true},
		{"integer[]", "integer", false},
	}
	for _, tt := range tests {
		if got := compatibleType(tt.src, tt.dst); got != tt.want {
			t.Errorf("compatibleType(%q, %q) = %v, want %v", tt.src, tt.dst, got, tt.want)
		}
	}
}
