package cli

import (
	"log/slog"
	"testing"
	"time"

	"github.com/pgtide/pgtide/internal/config"
)

func TestCaptureOptions(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`
nats:
  embedded:
    sync_interval: 300ms
    max_payload: 2MiB
sources:
  - name: shop
    dsn: postgres://h/shop
    heartbeat_interval: "off"
    ddl: false
    retention: {max_age: 1h, max_bytes: 1GiB}
  - name: crm
    dsn: postgres://h/crm
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{cfg: cfg, logger: slog.New(slog.DiscardHandler)}

	shop := n.captureOptions(cfg.Sources[0], nil)
	if shop.HeartbeatInterval >= 0 {
		t.Errorf("heartbeat_interval off: HeartbeatInterval = %s, want negative", shop.HeartbeatInterval)
	}
	if shop.DDL {
		t.Error("ddl: false: DDL = true")
	}
	if shop.MaxMessageBytes != 2<<20 {
		t.Errorf("MaxMessageBytes = %d, want the embedded max_payload %d", shop.MaxMessageBytes, 2<<20)
	}
	if shop.ConfirmDelay != 600*time.Millisecond {
		t.Errorf("ConfirmDelay = %s, want 2 x sync_interval = 600ms", shop.ConfirmDelay)
	}
	if shop.Retention.MaxAge != time.Hour || shop.Retention.MaxBytes != 1<<30 {
		t.Errorf("Retention = %+v, want 1h and 1GiB", shop.Retention)
	}
	if shop.Slot != "pgtide_shop" || shop.Publication != "pgtide_shop" {
		t.Errorf("Slot, Publication = %q, %q, want pgtide_shop", shop.Slot, shop.Publication)
	}

	crm := n.captureOptions(cfg.Sources[1], nil)
	if crm.HeartbeatInterval != 10*time.Second || !crm.DDL {
		t.Errorf("crm defaults: HeartbeatInterval %s, DDL %v; want 10s and true", crm.HeartbeatInterval, crm.DDL)
	}
}

func TestDialAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		":7070":          "127.0.0.1:7070",
		"0.0.0.0:7070":   "127.0.0.1:7070",
		"[::]:7070":      "[::1]:7070",
		"10.0.0.5:7070":  "10.0.0.5:7070",
		"localhost:7070": "localhost:7070",
	} {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
	if _, ok := listenerAddr("127.0.0.1:0"); ok {
		t.Error("listenerAddr of port 0 is dialable, want not")
	}
	if _, ok := listenerAddr(config.Off); ok {
		t.Error(`listenerAddr("off") is dialable, want not`)
	}
}

func TestRedactURLs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                  "",
		"nats://127.0.0.1:4222":             "nats://127.0.0.1:4222",
		"nats://u:secret@a:4222,nats://b:1": "nats://u:xxxxx@a:4222,nats://b:1",
		"tls://s3cr3ttoken@a:4222":          "tls://xxxxx@a:4222",
		"u:secret@a:4222":                   "xxxxx@a:4222",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
