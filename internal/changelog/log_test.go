package changelog

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestOpenEmbeddedInProcess(t *testing.T) {
	l := openTestLog(t, Config{})
	if !l.Embedded() {
		t.Errorf("Embedded() = false, want true")
	}
	if got := l.ClientURL(); got != "" {
		t.Errorf("ClientURL() = %q, want empty without Listen", got)
	}
	if !l.Conn().IsConnected() {
		t.Errorf("Conn().IsConnected() = false")
	}
	if _, err := l.JetStream().AccountInfo(t.Context()); err != nil {
		t.Errorf("AccountInfo: %v", err)
	}
}

func TestOpenEmbeddedListen(t *testing.T) {
	l := openTestLog(t, Config{Listen: "127.0.0.1:0"})
	url := l.ClientURL()
	port := strings.TrimPrefix(url, "nats://127.0.0.1:")
	if port == url || port == "0" || port == "-1" {
		t.Fatalf("ClientURL() = %q, want nats://127.0.0.1:<port>", url)
	}

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("nats.Connect(%s): %v", url, err)
	}
	defer nc.Close()
	if err := nc.Publish("hello", []byte("x")); err != nil {
		t.Fatalf("Publish over TCP: %v", err)
	}

	// Another process would open the same log as an external one.
	ensureTestStream(t, l, "src")
	publishAll(t, l, "src", 0, []testMsg{{Subject("src", "public", "t"), "one"}})

	ext := openTestLog(t, Config{URL: url})
	if ext.Embedded() {
		t.Errorf("external Log: Embedded() = true")
	}
	if got := ext.ClientURL(); got != url {
		t.Errorf("external Log: ClientURL() = %q, want %q", got, url)
	}
	last, err := ext.Last(t.Context(), "src")
	if err != nil || last == nil || string(last.Data) != "one" {
		t.Fatalf("external Log: Last(src) = %+v, %v; want message \"one\"", last, err)
	}
}

func TestOpenExternalFailureNamesURL(t *testing.T) {
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	url := "nats://pgtide:s3cret@" + addr
	_, err = Open(t.Context(), Config{URL: url})
	if err == nil {
		t.Fatalf("Open(%s) succeeded, want connection error", url)
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) {
		t.Errorf("Open(%s) error %q does not name %s", url, msg, addr)
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("Open(%s) error %q reveals the password", url, msg)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no_data_dir", Config{}, "needs a data directory"},
		{"bad_listen", Config{DataDir: t.TempDir(), Listen: "localhost"}, "listen address"},
		{"bad_port", Config{DataDir: t.TempDir(), Listen: "127.0.0.1:http"}, "not a number"},
		{"huge_payload", Config{DataDir: t.TempDir(), MaxPayload: 1 << 30}, "max payload"},
		{"negative_replicas", Config{DataDir: t.TempDir(), Replicas: -1}, "replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Open(t.Context(), tt.cfg)
			if err == nil {
				l.Close()
				t.Fatalf("Open(%+v) succeeded, want error containing %q", tt.cfg, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Open(%+v) error = %q, want it to contain %q", tt.cfg, err, tt.wantErr)
			}
		})
	}
}

func TestOpenListenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	l, err := Open(t.Context(), Config{DataDir: t.TempDir(), Listen: ln.Addr().String()})
	if err == nil {
		l.Close()
		t.Fatalf("Open with Listen on busy %s succeeded, want error", ln.Addr())
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Open with busy listener: error %q does not name %s", err, ln.Addr())
	}
}

func TestOpenCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l, err := Open(ctx, Config{DataDir: t.TempDir()})
	if err == nil {
		// Start may finish before the cancellation is seen.
		l.Close()
		return
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with canceled context: error = %v, want one wrapping context.Canceled", err)
	}
}

func TestRestartKeepsMessages(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(t.Context(), Config{DataDir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ensureTestStream(t, l, "src")
	msgs := []testMsg{
		{Subject("src", "public", "a"), "1"},
		{Subject("src", "public", "b"), "2"},
		{Subject("src", "public", "a"), "3"},
	}
	p, _ := publishAll(t, l, "src", 0, msgs)
	p.Close()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	l = openTestLog(t, Config{DataDir: dir})
	last, err := l.Last(t.Context(), "src")
	if err != nil {
		t.Fatalf("Last after restart: %v", err)
	}
	if last == nil || last.Seq != 3 || string(last.Data) != "3" || last.Subject != msgs[2].subject {
		t.Fatalf("Last after restart = %+v, want seq 3 data \"3\" on %s", last, msgs[2].subject)
	}
	if got := last.Header.Get("Pgtide-Test"); got != "3" {
		t.Errorf("Last after restart: header Pgtide-Test = %q, want \"3\"", got)
	}

	// A new publisher continues after the recovered messages.
	p2, _ := publishAll(t, l, "src", 0, []testMsg{{Subject("src", "public", "c"), "4"}})
	if got := p2.LastSeq(); got != 4 {
		t.Errorf("LastSeq after restart and one publish = %d, want 4", got)
	}
}
