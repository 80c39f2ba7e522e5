package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/gateway"
)

// childArg makes this program run the fan-out server: an embedded log,
// a gateway and a publisher of one-record transactions.
const childArg = "-child-fanout"

// runChild serves until stdin closes. It prints "READY <addr>", then for
// each "GO <rate> <seconds>" line publishes at that rate and prints
// "DONE".
func runChild(args []string) int {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pgtide-bench-fan-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	l, err := changelog.Open(ctx, changelog.Config{DataDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	if _, err := l.EnsureStream(ctx, "fan", changelog.Retention{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pub, err := l.NewPublisher(ctx, "fan", 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pub.Close()
	go func() {
		for range pub.Acked() {
		}
	}()
	gw, err := gateway.New(gateway.Config{Listen: "127.0.0.1:0"}, l, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := gw.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer gw.Shutdown(context.Background())
	fmt.Printf("READY %s\n", gw.Addr())

	cols := []change.Column{{Name: "id", Type: "bigint", OID: 20, Key: true}, {Name: "v", Type: "text", OID: 25}}
	lsn := change.LSN(0x1000000)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var rate, secs int
		if _, err := fmt.Sscanf(sc.Text(), "GO %d %d", &rate, &secs); err != nil {
			continue
		}
		interval := time.Second / time.Duration(rate)
		end := time.Now().Add(time.Duration(secs) * time.Second)
		for next := time.Now(); next.Before(end); next = next.Add(interval) {
			time.Sleep(time.Until(next))
			lsn += 0x100
			b := &change.Batch{
				Source: "fan", LSN: lsn, FirstPos: 1, Xid: uint32(lsn), CommitTime: time.Now(),
				Schema: "public", Table: "events", Op: change.OpInsert, Columns: cols, Last: true,
				Rows: []change.Row{{New: []*change.Value{change.Text(fmt.Sprint(lsn)), change.Text("hello fan-out")}}},
			}
			if err := pub.Publish(ctx, changelog.Subject("fan", "public", "events"), nil, b.AppendJSON(nil), 0); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		fmt.Println("DONE")
	}
	return 0
}

// pgtideFanout measures one stream to n WebSocket subscribers.
func pgtideFanout(ctx context.Context, n, rate int, dur time.Duration) (fanoutStats, error) {
	self, err := os.Executable()
	if err != nil {
		return fanoutStats{}, err
	}
	cmd := exec.CommandContext(ctx, self, childArg)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return fanoutStats{}, err
	}
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "READY ") {
		return fanoutStats{}, fmt.Errorf("child did not start: %q", lines.Text())
	}
	addr := strings.TrimPrefix(lines.Text(), "READY ")

	// The stream must exist with one message for subscribers to start
	// from "now"; publish a little first.
	fmt.Fprintf(stdin, "GO 10 1\n")
	lines.Scan()

	before := rssKiB(cmd.Process.Pid)
	count := &counter{}
	rec := &recorder{from: time.Now().Add(time.Hour)}
	conns, err := connectAll(ctx, n, func(ctx context.Context, i int) (*websocket.Conn, error) {
		c, err := dialPgtide(ctx, addr, `{"type":"subscribe","id":"s","source":"fan"}`)
		if err != nil {
			return nil, err
		}
		var r *recorder
		if i < 20 {
			r = rec
		}
		go readPgtide(ctx, c, count, r)
		return c, nil
	})
	defer closeAll(conns)
	if err != nil {
		return fanoutStats{}, err
	}
	time.Sleep(time.Second)
	after := rssKiB(cmd.Process.Pid)

	fmt.Fprintf(stdin, "GO %d %d\n", rate, int((dur+2*time.Second)/time.Second))
	rec.mu.Lock()
	rec.from = time.Now().Add(time.Second)
	rec.mu.Unlock()
	time.Sleep(time.Second)
	c0 := count.get()
	time.Sleep(dur)
	c1 := count.get()
	lines.Scan()
	return fanoutStats{
		delivered:  float64(c1-c0) / dur.Seconds(),
		p99:        rec.stats().p99,
		memPerConn: (after - before) / float64(n),
	}, nil
}

// connectAll opens n connections, 64 at a time.
func connectAll(ctx context.Context, n int, dial func(context.Context, int) (*websocket.Conn, error)) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := dial(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = fmt.Errorf("connection %d: %w", i, err)
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	return conns, first
}

func closeAll(conns []*websocket.Conn) {
	for _, c := range conns {
		if c != nil {
			c.CloseNow()
		}
	}
}
