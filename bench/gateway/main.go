// Command gateway measures pgtide's stream gateway side by side with
// Centrifugo v6 on this machine.
//
// Two figures come out of one run:
//
//   - latency: single-row INSERT transactions committed at a steady
//     -rate per second into a throwaway PostgreSQL cluster, captured into
//     the embedded log and streamed by the gateway to one WebSocket
//     client, which measures commit time to receipt (p50, p99). The
//     reference is Centrifugo delivering messages published at the same
//     rate through its HTTP API to one WebSocket client, measured from
//     publish to receipt: Centrifugo has no database in its path, so
//     its figure is a floor rather than a like-for-like pipeline;
//   - fan-out: one stream delivered to N concurrent WebSocket
//     subscribers at a given message rate (-fanout N:rate,…): records
//     delivered per second across all subscribers, delivery p99, and the
//     server's resident memory per connection. pgtide's server runs in a
//     child process (embedded log + gateway, fed by a publisher writing
//     one-record transactions into the log as capture would); Centrifugo
//     runs as its own process with messages published through its HTTP
//     API. Clients live in this process for both.
//
// Centrifugo is taken from -centrifugo, or from $PATH, or installed with
// `go install github.com/centrifugal/centrifugo/v6@v6.9.1` into a
// temporary GOBIN. Without it the reference figures are NA.
//
// Usage:
//
//	go run ./bench/gateway [-rate 2000] [-duration 10s] [-fanout 1000:100,10000:20]
//	    [-centrifugo path]
//
// The last lines are RESULT lines whose ratio is above 1 when pgtide does
// better than the reference (for latency, reference/pgtide). See
// docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is one RESULT line.
type result struct {
	name      string
	pgtide    float64
	reference float64 // NaN when there is none
	unit      string
	lowerWins bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(runChild(os.Args[2:]))
	}
	rate := flag.Int("rate", 2000, "changes per second of the latency run")
	duration := flag.Duration("duration", 10*time.Second, "measured time of each run")
	fanout := flag.String("fanout", "1000:100,10000:20", "fan-out runs as subscribers:messages-per-second, comma-separated")
	centrifugo := flag.String("centrifugo", "", "Centrifugo binary (default: $PATH, else go install)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	raiseFileLimit()

	bin, err := findCentrifugo(ctx, *centrifugo)
	if err != nil {
		fmt.Fprintln(os.Stderr, "centrifugo unavailable, reference figures are NA:", err)
	}

	var results []result
	lat, err := pgtideLatency(ctx, *rate, *duration)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtide latency:", err)
		os.Exit(1)
	}
	ref := latencyStats{p50: nan, p99: nan}
	if bin != "" {
		if ref, err = centrifugoLatency(ctx, bin, *rate, *duration); err != nil {
			fmt.Fprintln(os.Stderr, "centrifugo latency:", err)
			ref = latencyStats{p50: nan, p99: nan}
		}
	}
	fmt.Printf("latency at %d changes/s: pgtide p50 %.2f ms p99 %.2f ms (%d samples); centrifugo p50 %.2f ms p99 %.2f ms\n",
		*rate, lat.p50, lat.p99, lat.n, ref.p50, ref.p99)
	results = append(results,
		result{fmt.Sprintf("gateway_latency_p50_at_%d", *rate), lat.p50, ref.p50, "ms", true},
		result{fmt.Sprintf("gateway_latency_p99_at_%d", *rate), lat.p99, ref.p99, "ms", true},
	)

	for _, spec := range strings.Split(*fanout, ",") {
		n, r, err := parseFanout(spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		pg, err := pgtideFanout(ctx, n, r, *duration)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pgtide fan-out %d: %v\n", n, err)
			continue
		}
		cf := fanoutStats{delivered: nan, p99: nan, memPerConn: nan}
		if bin != "" {
			if cf, err = centrifugoFanout(ctx, bin, n, r, *duration); err != nil {
				fmt.Fprintf(os.Stderr, "centrifugo fan-out %d: %v\n", n, err)
				cf = fanoutStats{delivered: nan, p99: nan, memPerConn: nan}
			}
		}
		fmt.Printf("fan-out %d subscribers at %d msgs/s: pgtide %.0f delivered/s p99 %.1f ms %.1f KiB/conn; centrifugo %.0f delivered/s p99 %.1f ms %.1f KiB/conn\n",
			n, r, pg.delivered, pg.p99, pg.memPerConn, cf.delivered, cf.p99, cf.memPerConn)
		results = append(results,
			result{fmt.Sprintf("gateway_fanout_%d_delivered", n), pg.delivered, cf.delivered, "records/s", false},
			result{fmt.Sprintf("gateway_fanout_%d_p99", n), pg.p99, cf.p99, "ms", true},
			result{fmt.Sprintf("gateway_fanout_%d_mem_per_conn", n), pg.memPerConn, cf.memPerConn, "KiB", true},
		)
	}

	for _, r := range results {
		ref, ratio := "NA", "NA"
		if r.reference == r.reference { // not NaN
			ref = strconv.FormatFloat(r.reference, 'f', 2, 64)
			if r.lowerWins {
				ratio = strconv.FormatFloat(r.reference/r.pgtide, 'f', 2, 64)
			} else {
				ratio = strconv.FormatFloat(r.pgtide/r.reference, 'f', 2, 64)
			}
		}
		fmt.Printf("RESULT %s pgtide=%.2f reference=%s unit=%s ratio=%s\n", r.name, r.pgtide, ref, r.unit, ratio)
	}
}

func parseFanout(spec string) (n, rate int, err error) {
	a, b, ok := strings.Cut(strings.TrimSpace(spec), ":")
	n, err1 := strconv.Atoi(a)
	rate, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n <= 0 || rate <= 0 {
		return 0, 0, fmt.Errorf("fan-out %q: want subscribers:rate, e.g. 1000:100", spec)
	}
	return n, rate, nil
}

// raiseFileLimit lifts the soft open-file limit to the hard one, for
// thousands of sockets; children inherit it.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
