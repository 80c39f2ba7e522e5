package config

import (
	"reflect"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		DataDir: "./pgtide-data",
		Log:     LogConfig{Level: "info", Format: "text"},
		Admin:   AdminConfig{Listen: "127.0.0.1:7070"},
		NATS: NATSConfig{
			Embedded: EmbeddedNATS{
				Listen:       "127.0.0.1:7422",
				SyncInterval: Duration(time.Second),
				MaxPayload:   8 << 20,
			},
			Replicas:     1,
			ConfirmDelay: Duration(2 * time.Second),
		},
		Gateway: defaultGateway,
		Proxy:   defaultProxy,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n %+v\nwant\n %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

func TestApplyDefaults_source(t *testing.T) {
	c := Config{Sources: []SourceConfig{
		{Name: "shop-eu", DSN: "postgres://localhost/shop"},
		{Name: "Bad Name", DSN: "postgres://localhost/x"},
	}}
	c.ApplyDefaults()

	on := true
	want := SourceConfig{
		Name:              "shop-eu",
		DSN:               "postgres://localhost/shop",
		Schemas:           []string{"public"},
		Slot:              "pgtide_shop_eu",
		Publication:       "pgtide_shop_eu",
		Keyless:           "skip",
		DDL:               &on,
		HeartbeatInterval: Duration(10 * time.Second),
		MaxRetainedWAL:    16 << 30,
		StatusInterval:    Duration(time.Second),
		Retention:         Retention{MaxAge: Duration(168 * time.Hour)},
		Snapshot:          "initial",
		SnapshotWorkers:   2,
		SnapshotChunkRows: 250000,
	}
	if !reflect.DeepEqual(c.Sources[0], want) {
		t.Errorf("defaulted source =\n %+v\nwant\n %+v", c.Sources[0], want)
	}
	// No slot is derived from an invalid name; only the name is reported.
	if s := c.Sources[1]; s.Slot != "" || s.Publication != "" {
		t.Errorf("slot, publication from an invalid name = %q, %q; want empty", s.Slot, s.Publication)
	}
	err := c.Validate()
	if ve, ok := err.(*ValidationError); !ok || len(ve.Errors) != 1 || ve.Errors[0].Path != "sources[1].name" {
		t.Errorf("Validate() = %v, want only sources[1].name", err)
	}
}

func TestApplyDefaults_confirmDelay(t *testing.T) {
	tests := []struct {
		name string
		nats NATSConfig
		want Duration
	}{
		{"embedded", NATSConfig{}, Duration(2 * time.Second)},
		{"embedded_sync",
			NATSConfig{Embedded: EmbeddedNATS{SyncInterval: Duration(5 * time.Second)}}, Duration(10 * time.Second)},
		{"external", NATSConfig{URL: "nats://n:4222"}, 0},
		{"set", NATSConfig{ConfirmDelay: Duration(time.Second)}, Duration(time.Second)},
	}
	for _, tt := range tests {
		c := Config{NATS: tt.nats}
		c.ApplyDefaults()
		if c.NATS.ConfirmDelay != tt.want {
			t.Errorf("%s: confirm_delay = %v, want %v", tt.name, c.NATS.ConfirmDelay, tt.want)
		}
	}
}

func TestSetNATSURL(t *testing.T) {
	c, err := Parse([]byte("nats:\n  embedded:\n    sync_interval: 1s\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.NATS.ConfirmDelay != Duration(2*time.Second) {
		t.Fatalf("embedded confirm_delay = %v, want 2s", c.NATS.ConfirmDelay)
	}
	c.SetNATSURL("nats://127.0.0.1:4222")
	if c.NATS.ConfirmDelay != 0 {
		t.Errorf("confirm_delay after SetNATSURL = %v, want 0 for an external cluster", c.NATS.ConfirmDelay)
	}

	c, err = Parse([]byte("nats:\n  confirm_delay: 5s\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.SetNATSURL("nats://127.0.0.1:4222")
	if c.NATS.ConfirmDelay != Duration(5*time.Second) {
		t.Errorf("confirm_delay given in the file = %v after SetNATSURL, want 5s kept", c.NATS.ConfirmDelay)
	}
}
