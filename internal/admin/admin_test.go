package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// startServer runs a server on a free port until the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s := New(cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// get returns the status code and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestServer_Healthz(t *testing.T) {
	s := startServer(t, Config{})
	code, body := get(t, s.URL()+"/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 %q", code, body, "ok\n")
	}
}

func TestServer_Readyz(t *testing.T) {
	var reason atomic.Pointer[string]
	s := startServer(t, Config{Ready: func() error {
		if r := reason.Load(); r != nil {
			return errors.New(*r)
		}
		return nil
	}})

	notReady := "source shop: setting up"
	reason.Store(&notReady)
	code, body := get(t, s.URL()+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, notReady) {
		t.Errorf("GET /readyz while not ready = %d %q, want 503 with %q", code, body, notReady)
	}

	reason.Store(nil)
	code, body = get(t, s.URL()+"/readyz")
	if code != http.StatusOK {
		t.Errorf("GET /readyz while ready = %d %q, want 200", code, body)
	}
}

func TestServer_Metrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgtide_test_events_total",
		Help: "Events counted by the test.",
	})
	reg.MustRegister(c)
	c.Add(3)

	s := startServer(t, Config{Registry: reg})
	code, body := get(t, s.URL()+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", code)
	}
	for _, want := range []string{"pgtide_test_events_total 3", "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
}

func TestServer_MetricsRegistryWithRuntimeCollectors(t *testing.T) {
	// A registry that already holds the runtime collectors keeps working.
	reg := prometheus.NewRegistry()
	New(Config{Registry: reg})
	s := startServer(t, Config{Registry: reg})
	if code, _ := get(t, s.URL()+"/metrics"); code != http.StatusOK {
		t.Errorf("GET /metrics = %d, want 200", code)
	}
}

func TestServer_Status(t *testing.T) {
	type doc struct {
		Sources []string `json:"sources"`
		Ready   bool     `json:"ready"`
	}
	s := startServer(t, Config{Status: func(ctx context.Context) any {
		return doc{Sources: []string{"shop", "crm"}, Ready: true}
	}})

	code, body := get(t, s.URL()+"/v1/status")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d %q, want 200", code, body)
	}
	var got doc
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("GET /v1/status body %q: %v", body, err)
	}
	if !got.Ready || strings.Join(got.Sources, ",") != "shop,crm" {
		t.Errorf("GET /v1/status = %+v, want sources shop,crm and ready", got)
	}
}

func TestServer_StatusDefault(t *testing.T) {
	s := startServer(t, Config{})
	code, body := get(t, s.URL()+"/v1/status")
	if code != http.StatusOK || strings.TrimSpace(body) != "{}" {
		t.Errorf("GET /v1/status without Status = %d %q, want 200 {}", code, body)
	}
}

func TestServer_MethodNotAllowed(t *testing.T) {
	s := startServer(t, Config{})
	resp, err := http.Post(s.URL()+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func TestServer_StartTwice(t *testing.T) {
	s := startServer(t, Config{})
	if err := s.Start(t.Context()); err == nil {
		t.Error("second Start succeeded, want an error")
	}
}

func TestServer_ListenError(t *testing.T) {
	s := startServer(t, Config{})
	other := New(Config{Listen: s.Addr()})
	err := other.Start(t.Context())
	if err == nil {
		other.Shutdown(t.Context())
		t.Fatalf("Start on busy %s succeeded, want an error", s.Addr())
	}
	if !strings.Contains(err.Error(), s.Addr()) {
		t.Errorf("Start error %q does not name the address %s", err, s.Addr())
	}
}

func TestServer_ShutdownUnstarted(t *testing.T) {
	if err := New(Config{Listen: "127.0.0.1:0"}).Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown of unstarted server = %v, want nil", err)
	}
}

func TestServer_Routes(t *testing.T) {
	s := startServer(t, Config{
		UnencryptedHTTP2: true,
		Routes: []Route{{
			Pattern: "/v1/extra",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, r.Method+" "+r.Proto)
			}),
			Help: "/v1/extra    an extra endpoint",
		}},
	})

	code, body := get(t, s.URL()+"/v1/extra")
	if code != http.StatusOK || body != "GET HTTP/1.1" {
		t.Errorf("GET /v1/extra = %d %q, want 200 %q", code, body, "GET HTTP/1.1")
	}
	if _, body := get(t, s.URL()+"/"); !strings.Contains(body, "/v1/extra    an extra endpoint") {
		t.Errorf("GET / = %q, want the extra endpoint's help line", body)
	}

	// HTTP/2 with prior knowledge, as gRPC clients speak it.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+"/v1/extra", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("POST /v1/extra over h2c: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "POST HTTP/2.0" {
		t.Errorf("POST /v1/extra over h2c = %q, want %q", b, "POST HTTP/2.0")
	}
}
