package main

import (
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

var nan = math.NaN()

// latencyStats are delivery latencies in milliseconds.
type latencyStats struct {
	p50, p99 float64
	n        int
}

// fanoutStats are the figures of one fan-out run.
type fanoutStats struct {
	delivered  float64 // records per second, all subscribers
	p99        float64 // ms
	memPerConn float64 // KiB of server RSS per connection
}

// recorder collects latency samples; safe for concurrent use.
type recorder struct {
	mu      sync.Mutex
	samples []float64
	from    time.Time // samples before are warm-up
}

func (r *recorder) add(sent, got time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sent.Before(r.from) {
		return
	}
	r.samples = append(r.samples, float64(got.Sub(sent))/float64(time.Millisecond))
}

func (r *recorder) stats() latencyStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.samples)
	slices.Sort(s)
	if len(s) == 0 {
		return latencyStats{p50: nan, p99: nan}
	}
	q := func(p float64) float64 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return latencyStats{p50: q(0.50), p99: q(0.99), n: len(s)}
}

// rssKiB returns the resident set size of process pid.
func rssKiB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nan
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return n
		}
	}
	return nan
}
