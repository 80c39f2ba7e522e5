package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// replicaSource is a configuration with one source, for replica tests.
const replicaSource = "sources:\n  - name: shop\n    dsn: postgres://pgtide:srcpw@db/shop\n"

func TestParse_replicas(t *testing.T) {
	in := replicaSource + `replicas:
  - name: analytics
    source: shop
    dsn: postgres://postgres:s3cret@replica/shop
    on_conflict: upsert
    create_schema: false
    start_after_lsn: 16/B374D848
    group_max_tx: 10
    group_max_rows: 500
    group_max_delay: 50ms
    sequence_sync_interval: "off"
  - name: upgrade
    source: shop
    dsn: host=pg16 dbname=shop
`
	c, err := Parse([]byte(in), "t.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []ReplicaConfig{{
		Name: "analytics", Source: "shop", DSN: "postgres://postgres:s3cret@replica/shop",
		OnConflict: OnConflictUpsert, CreateSchema: CreateSchemaFalse, StartAfterLSN: "16/B374D848",
		GroupMaxTx: 10, GroupMaxRows: 500, GroupMaxDelay: Duration(50 * time.Millisecond),
		SequenceSyncInterval: 0,
	}, {
		Name: "upgrade", Source: "shop", DSN: "host=pg16 dbname=shop",
		OnConflict: DefaultOnConflict, CreateSchema: DefaultCreateSchema, GroupMaxTx: DefaultGroupMaxTx,
		GroupMaxRows: DefaultGroupMaxRows, GroupMaxDelay: DefaultGroupMaxDelay,
		SequenceSyncInterval: DefaultSequenceSyncInterval,
	}}
	if !reflect.DeepEqual(c.Replicas, want) {
		t.Errorf("replicas:\n got %+v\nwant %+v", c.Replicas, want)
	}
	if r, ok := c.Replica("analytics"); !ok || r.RedactedDSN() != "postgres://postgres:xxxxx@replica/shop" {
		t.Errorf("Replica(analytics) = %+v, %v; want it, with RedactedDSN masking the password", r, ok)
	}
}

func TestParse_replicaErrors(t *testing.T) {
	// replica builds a one-replica list after the source, with extra
	// lines.
	// replica builds a one-replica list after the source; each line
	// "key: value" replaces the base line of that key or is added after
	// them (line 8).
	replica := func(lines ...string) string {
		base := []string{"name: copy", "source: shop", "dsn: postgres://postgres:tgtpw@h/copy"}
	next:
		for _, l := range lines {
			key, _, _ := strings.Cut(l, ":")
			for i, b := range base {
				if strings.HasPrefix(b, key+":") {
					base[i] = l
					continue next
				}
			}
			base = append(base, l)
		}
		return replicaSource + "replicas:\n  - " + strings.Join(base, "\n    ") + "\n"
	}
	tests := []struct {
		name   string
		in     string
		path   string
		phrase string
		line   int
	}{
		{"not_list", "replicas: 3", "replicas", "the number of copies of each stream is nats.replicas", 1},
		{"name_missing", replicaSource + "replicas:\n  - source: shop\n    dsn: postgres://h/analytics",
			"replicas[0].name", `missing: every replica needs a unique name, e.g. "analytics"`, 5},
		{"name_invalid", replica("name: Copy One"), "replicas[0].name", `"Copy One" is not a valid replica name`, 5},
		{"name_duplicate", replica() + "  - name: copy\n    source: shop\n    dsn: postgres://h/other",
			"replicas[1].name", `"copy" is already the name of replicas[0]`, 8},
		{"source_missing", replicaSource + "replicas:\n  - name: copy\n    dsn: postgres://h/copy",
			"replicas[0].source", `missing: name the source whose changes this replica receives: "shop"`, 5},
		{"source_unknown", replica("source: crm"), "replicas[0].source",
			`"crm" is not a configured source: use "shop"`, 6},
		{"source_none", "replicas:\n  - {name: copy, source: shop, dsn: 'postgres://h/copy'}",
			"replicas[0].source", `"shop" is not a configured source: add it under sources`, 2},
		{"dsn_missing", replicaSource + "replicas:\n  - name: copy\n    source: shop",
			"replicas[0].dsn", "missing: give the connection string of the target database", 5},
		{"dsn_invalid", replica("dsn: postgres://postgres:tgtpw@h:port/copy"), "replicas[0].dsn",
			"not a valid connection string", 7},
		{"dsn_is_source", replica("dsn: postgres://pgtide:srcpw@db/shop"), "replicas[0].dsn",
			`is the dsn of its source "shop"`, 7},
		{"dsn_duplicate", replica() + "  - name: copy2\n    source: shop\n    dsn: postgres://postgres:tgtpw@h/copy",
			"replicas[1].dsn", "is also the dsn of replicas[0]: one target takes one applier", 10},
		{"on_conflict", replica("on_conflict: ignore"), "replicas[0].on_conflict",
			`"ignore" is not a divergence policy: use "stop"`, 8},
		{"create_schema", replica("create_schema: maybe"), "replicas[0].create_schema",
			`"maybe" is not a create_schema mode: use "auto", "true" or "false"`, 8},
		{"start_after_lsn", replica("start_after_lsn: 12345"), "replicas[0].start_after_lsn",
			`"12345" is not an LSN: write two hex numbers separated by '/'`, 8},
		{"start_after_lsn_hex", replica("start_after_lsn: 0/XYZ"), "replicas[0].start_after_lsn",
			"each part is a hex number", 8},
		{"group_max_tx", replica("group_max_tx: 0"), "replicas[0].group_max_tx", "0 is too small", 8},
		{"group_max_rows", replica("group_max_rows: -5"), "replicas[0].group_max_rows", "-5 is too small", 8},
		{"group_max_delay_zero", replica("group_max_delay: 0"), "replicas[0].group_max_delay",
			"must be more than 0", 8},
		{"group_max_delay_long", replica("group_max_delay: 2m"), "replicas[0].group_max_delay", "at most 1m", 8},
		{"sequence_sync_short", replica("sequence_sync_interval: 10ms"), "replicas[0].sequence_sync_interval",
			"too short", 8},
		{"unknown_key", replica("on_conflicts: log"), "replicas[0].on_conflicts", `did you mean "on_conflict"?`, 8},
		{"type", replica("group_max_tx: many"), "replicas[0].group_max_tx", `expected a whole number, got "many"`, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), "t.yaml")
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse(%q) error = %v, want a ValidationError", tt.in, err)
			}
			for _, secret := range []string{"tgtpw", "srcpw"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Parse(%q) error shows a password:\n%v", tt.in, err)
				}
			}
			for _, fe := range ve.Errors {
				if fe.Path == tt.path && strings.Contains(fe.Message, tt.phrase) {
					if tt.line != 0 && fe.Line != tt.line {
						t.Errorf("Parse(%q): %s on line %d, want line %d", tt.in, tt.path, fe.Line, tt.line)
					}
					return
				}
			}
			t.Errorf("Parse(%q) error:\n%v\nwant %s: ...%s...", tt.in, err, tt.path, tt.phrase)
		})
	}
}
