package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// childEnv carries a childSpec as JSON to a copy of this program, which
// then runs one pgtide drain instead of the benchmark.
const childEnv = "PGTIDE_BENCH_CAPTURE_CHILD"

// childSpec says what one pgtide drain captures and where it stops.
type childSpec struct {
	DSN       string
	Slot      string
	LogDir    string
	CommitLSN change.LSN // commit LSN of the final transaction
	EndLSN    change.LSN // end of its commit record
	// WaitSlot detects the end of the drain from the slot's confirmed
	// position instead of by reading the log's tail (see waitSlot).
	WaitSlot   bool
	BatchRows  int    // 0: capture's default
	CPUProfile string // "" for none
	// VerifyRows, when positive, is the number of records the log must
	// hold after the drain; counting them is not timed.
	VerifyRows int
	// HeapProfile receives a heap profile taken when the drain ends ("" for
	// none).
	HeapProfile string
}

// childResult is what a child prints, as one JSON line, on stdout.
type childResult struct {
	// Seconds is the drain's wall time: from starting capture until the
	// log's last message is the final transaction's last batch (or, with
	// WaitSlot, until the slot has confirmed that transaction).
	Seconds float64
	// HWMBeforeKiB is the peak RSS before the drain started, with the
	// log open; HWMAfterKiB the peak RSS when it ended, before capture
	// stops and before verification.
	HWMBeforeKiB, HWMAfterKiB int64
	// CPUSeconds is the process's user and system CPU time during the
	// drain.
	CPUSeconds float64
	// Messages is the number of messages in the log at the end.
	Messages uint64
}

// runChild runs one pgtide drain as described by spec (JSON) and prints
// its childResult.
func runChild(spec string) error {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		return fmt.Errorf("decode %s: %w", childEnv, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	lg, err := changelog.Open(ctx, changelog.Config{DataDir: s.LogDir})
	if err != nil {
		return fmt.Errorf("open change log: %w", err)
	}
	defer lg.Close()

	opts := setupOptions(s.DSN, s.Slot)
	opts.Log = lg
	opts.BatchRows = s.BatchRows
	c, err := capture.New(opts)
	if err != nil {
		return fmt.Errorf("new capture: %w", err)
	}

	res := childResult{HWMBeforeKiB: vmHWM()}
	if s.CPUProfile != "" {
		f, err := os.Create(s.CPUProfile)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	cpu0 := cpuTime()
	start := time.Now()
	go func() { done <- c.Run(runCtx) }()

	var seq uint64
	if s.WaitSlot {
		seq, err = waitSlot(ctx, lg, s, done)
	} else {
		seq, err = waitFor(ctx, lg, s.CommitLSN, done)
	}
	res.Seconds = time.Since(start).Seconds()
	res.CPUSeconds = cpuTime() - cpu0
	res.HWMAfterKiB = vmHWM()
	res.Messages = seq
	if s.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if err == nil && s.HeapProfile != "" {
		err = writeHeapProfile(s.HeapProfile)
	}
	cancel()
	if err != nil {
		return err
	}
	if err := <-done; err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if s.VerifyRows > 0 {
		if err := verify(ctx, lg, s.VerifyRows); err != nil {
			return err
		}
	}

	out, _ := json.Marshal(res)
	fmt.Printf("%s\n", out)
	return nil
}

// verify counts the records in the log and checks that positions run
// without a gap inside each transaction.
func verify(ctx context.Context, lg *changelog.Log, want int) error {
	n := 0
	var next change.ID // expected ID of the next record; zero at a transaction's start
	err := lg.ReadRange(ctx, source, 0, 0, func(m *changelog.Message) error {
		b, err := change.DecodeBatch(m.Data)
		if err != nil {
			return fmt.Errorf("decode message %d: %w", m.Seq, err)
		}
		first := b.FirstID()
		if next.LSN != 0 && first != next || next.LSN == 0 && first.Pos != 1 {
			return fmt.Errorf("message %d starts at %s, want %s", m.Seq, first, next)
		}
		next = b.LastID()
		next.Pos++
		if b.Last {
			next = change.ID{}
		}
		n += b.Len()
		return nil
	})
	if err != nil && !errors.Is(err, changelog.ErrStop) {
		return fmt.Errorf("verify log: %w", err)
	}
	if n != want {
		return fmt.Errorf("verify log: %d records, want %d", n, want)
	}
	fmt.Fprintf(os.Stderr, "verified: %d records, positions without gaps\n", n)
	return nil
}

// writeHeapProfile writes the live heap, as of the last garbage
// collection, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return fmt.Errorf("write heap profile: %w", err)
	}
	return nil
}

// cpuTime returns this process's user plus system CPU seconds so far.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// vmHWM returns this process's peak RSS in KiB from /proc/self/status, or
// 0 when it cannot be read.
func vmHWM() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		// The line reads "VmHWM:\t  123456 kB".
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "VmHWM:" {
			kib, _ := strconv.ParseInt(f[1], 10, 64)
			return kib
		}
	}
	return 0
}

// errNoResult reports a child that exited without printing its result.
var errNoResult = errors.New("capture child printed no result")
