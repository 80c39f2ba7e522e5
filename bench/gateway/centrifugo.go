package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coder/websocket"
)

const centrifugoModule = "github.com/centrifugal/centrifugo/v6@v6.9.1"

// findCentrifugo returns the Centrifugo binary: path when given, else
// one on $PATH, else one installed from the Go module proxy into a
// temporary GOBIN.
func findCentrifugo(ctx context.Context, path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p, nil
	}
	gobin := filepath.Join(os.TempDir(), "pgtide-bench-centrifugo")
	bin := filepath.Join(gobin, "centrifugo")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	fmt.Fprintln(os.Stderr, "installing", centrifugoModule, "(takes a few minutes once)")
	cmd := exec.CommandContext(ctx, "go", "install", centrifugoModule)
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s: %w", centrifugoModule, err)
	}
	return bin, nil
}

// centrifugo is a running Centrifugo server.
type centrifugo struct {
	cmd  *exec.Cmd
	addr string
	dir  string
}

func startCentrifugo(ctx context.Context, bin string) (*centrifugo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "pgtide-bench-centrifugo-")
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "error"},
		"client":      map[string]any{"insecure": true, "allowed_origins": []string{"*"}},
		"http_api":    map[string]any{"insecure": true},
		"channel": map[string]any{"without_namespace": map[string]any{
			"allow_subscribe_for_client": true, "allow_subscribe_for_anonymous": true,
		}},
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfgPath, mustJSON(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "--config", cfgPath)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &centrifugo{cmd: cmd, addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if conn, err := net.Dial("tcp", c.addr); err == nil {
			conn.Close()
			return c, nil
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, errors.New("centrifugo did not become healthy in 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *centrifugo) stop() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
	os.RemoveAll(c.dir)
}

// dial connects a client and subscribes it to channel.
func (c *centrifugo) dial(ctx context.Context, channel string) (*websocket.Conn, error) {
	conn, _, err := websocket.Dial(ctx, "ws://"+c.addr+"/connection/websocket", nil)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(64 << 20)
	msgs := fmt.Sprintf("{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":%q}}", channel)
	if err := conn.Write(ctx, websocket.MessageText, []byte(msgs)); err != nil {
		conn.CloseNow()
		return nil, err
	}
	for got := 0; got < 2; {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			conn.CloseNow()
			return nil, err
		}
		if bytes.Contains(msg, []byte(`"error"`)) {
			conn.CloseNow()
			return nil, fmt.Errorf("centrifugo: %s", msg)
		}
		got += bytes.Count(msg, []byte(`"id":`))
	}
	return conn, nil
}

var (
	pubKey   = []byte(`"pub":`)
	stampKey = []byte(`"t":`)
)

// read counts publications and records latencies from their stamps.
func (c *centrifugo) read(ctx context.Context, conn *websocket.Conn, count *counter, rec *recorder) {
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		now := time.Now()
		if bytes.Equal(bytes.TrimSpace(msg), []byte("{}")) {
			conn.Write(ctx, websocket.MessageText, []byte("{}")) // pong
			continue
		}
		if count != nil {
			count.add(int64(bytes.Count(msg, pubKey)))
		}
		if rec == nil {
			continue
		}
		for rest := msg; ; {
			i := bytes.Index(rest, stampKey)
			if i < 0 {
				break
			}
			rest = rest[i+len(stampKey):]
			j := bytes.IndexAny(rest, ",}")
			if ns, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
				rec.add(time.Unix(0, ns), now)
			}
		}
	}
}

// publish sends rate messages per second to channel for dur, in batches
// every 5 ms through the HTTP API.
func (c *centrifugo) publish(ctx context.Context, channel string, rate int, dur time.Duration) error {
	const tick = 5 * time.Millisecond
	type publish struct {
		Channel string `json:"channel"`
		Data    stamp  `json:"data"`
	}
	type command struct {
		Publish publish `json:"publish"`
	}
	end := time.Now().Add(dur)
	sent := 0
	start := time.Now()
	for next := start; next.Before(end); next = next.Add(tick) {
		time.Sleep(time.Until(next))
		due := int(float64(rate) * time.Since(start).Seconds())
		if due <= sent {
			continue
		}
		var batch struct {
			Commands []command `json:"commands"`
		}
		for ; sent < due; sent++ {
			batch.Commands = append(batch.Commands, command{publish{channel, stamp{time.Now().UnixNano()}}})
		}
		body := mustJSON(batch)
		var err error
		for try := 0; try < 3; try++ {
			// A kept-alive API connection the server closed fails with
			// EOF once; the batch is then sent again.
			var resp *http.Response
			resp, err = http.Post("http://"+c.addr+"/api/batch", "application/json", bytes.NewReader(body))
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("centrifugo publish: %s", resp.Status)
			}
			break
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// centrifugoLatency measures publish-to-receipt latency for one client.
func centrifugoLatency(ctx context.Context, bin string, rate int, dur time.Duration) (latencyStats, error) {
	c, err := startCentrifugo(ctx, bin)
	if err != nil {
		return latencyStats{}, err
	}
	defer c.stop()
	conn, err := c.dial(ctx, "lat")
	if err != nil {
		return latencyStats{}, err
	}
	defer conn.CloseNow()
	rec := &recorder{from: time.Now().Add(warmUp)}
	go c.read(ctx, conn, nil, rec)
	if err := c.publish(ctx, "lat", rate, warmUp+dur); err != nil {
		return latencyStats{}, err
	}
	time.Sleep(time.Second)
	return rec.stats(), nil
}

// centrifugoFanout measures one channel to n subscribers.
func centrifugoFanout(ctx context.Context, bin string, n, rate int, dur time.Duration) (fanoutStats, error) {
	c, err := startCentrifugo(ctx, bin)
	if err != nil {
		return fanoutStats{}, err
	}
	defer c.stop()
	before := rssKiB(c.cmd.Process.Pid)
	count := &counter{}
	rec := &recorder{from: time.Now().Add(time.Hour)}
	conns, err := connectAll(ctx, n, func(ctx context.Context, i int) (*websocket.Conn, error) {
		conn, err := c.dial(ctx, "fan")
		if err != nil {
			return nil, err
		}
		var r *recorder
		if i < 20 {
			r = rec
		}
		go c.read(ctx, conn, count, r)
		return conn, nil
	})
	defer closeAll(conns)
	if err != nil {
		return fanoutStats{}, err
	}
	time.Sleep(time.Second)
	after := rssKiB(c.cmd.Process.Pid)

	done := make(chan error, 1)
	go func() { done <- c.publish(ctx, "fan", rate, dur+2*time.Second) }()
	rec.mu.Lock()
	rec.from = time.Now().Add(time.Second)
	rec.mu.Unlock()
	time.Sleep(time.Second)
	c0 := count.get()
	time.Sleep(dur)
	c1 := count.get()
	if err := <-done; err != nil {
		return fanoutStats{}, err
	}
	return fanoutStats{
		delivered:  float64(c1-c0) / dur.Seconds(),
		p99:        rec.stats().p99,
		memPerConn: (after - before) / float64(n),
	}, nil
}
