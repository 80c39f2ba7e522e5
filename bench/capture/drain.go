package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// drain is the outcome of one drain by either side.
type drain struct {
	seconds float64
	// maxRSSKiB is the draining process's peak RSS: rusage ru_maxrss for
	// pg_recvlogical, VmHWM at the end of the drain for pgtide.
	maxRSSKiB int64
	// cpuSeconds is the draining process's user plus system CPU time
	// (for pgtide during the drain only).
	cpuSeconds float64
	// senderSeconds is the CPU time of the walsender that served it.
	senderSeconds float64
	// baseKiB is the peak RSS before the drain began, for pgtide only.
	baseKiB int64
	// messages is the number of log messages written, for pgtide only.
	messages uint64
}

func (d drain) rate(rows int) float64 { return float64(rows) / d.seconds }

func (d drain) maxRSSMiB() float64 { return float64(d.maxRSSKiB) / 1024 }

// pgtideDrain runs capture on slot in a child process until the log ends
// with the transaction at end.
func (b *bench) pgtideDrain(ctx context.Context, slot string, end txEnd, spec childSpec) (drain, error) {
	dir, err := b.newLogDir()
	if err != nil {
		return drain{}, err
	}
	defer func() {
		if !b.cfg.keep {
			os.RemoveAll(dir)
		}
	}()

	spec.DSN, spec.Slot, spec.LogDir = b.pg.DSN("postgres"), slot, dir
	spec.CommitLSN, spec.EndLSN = end.commit, end.end
	specJSON, _ := json.Marshal(spec)
	exe, err := os.Executable()
	if err != nil {
		return drain{}, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(specJSON))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	stopSampler, err := b.senderCPU(ctx, slot)
	if err != nil {
		return drain{}, err
	}
	err = cmd.Run()
	sender := stopSampler()
	if err != nil {
		return drain{}, fmt.Errorf("pgtide drain of slot %s: %w", slot, err)
	}

	var res childResult
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		return drain{}, fmt.Errorf("pgtide drain of slot %s: %w (output %q)", slot, errNoResult, stdout.String())
	}
	// The child's own figures cover the drain only, not verification or
	// shutdown.
	d := drain{
		seconds: res.Seconds, maxRSSKiB: res.HWMAfterKiB, cpuSeconds: res.CPUSeconds,
		senderSeconds: sender, baseKiB: res.HWMBeforeKiB, messages: res.Messages,
	}
	return d, nil
}

// refDrain runs pg_recvlogical on slot over TCP until it exits at the end
// of the transaction at end. Its time runs from starting the process to
// its exit.
func (b *bench) refDrain(ctx context.Context, slot string, end txEnd) (drain, error) {
	cmd := b.pg.Command(ctx, "pg_recvlogical",
		"-h", "127.0.0.1", "-p", strconv.Itoa(b.pg.Port()), "-U", "postgres", "-d", "postgres",
		"--slot", slot, "--start", "--no-loop",
		"--endpos", end.end.String(), "-f", "/dev/null",
		"-o", "proto_version=1",
		"-o", "publication_names="+publication+","+publication+"_keyless",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL

	stopSampler, err := b.senderCPU(ctx, slot)
	if err != nil {
		return drain{}, err
	}
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	sender := stopSampler()
	if err != nil {
		return drain{}, fmt.Errorf("pg_recvlogical on slot %s: %w: %s",
			slot, err, strings.TrimSpace(stderr.String()))
	}
	d := usage(cmd.ProcessState)
	d.seconds, d.senderSeconds = elapsed.Seconds(), sender
	return d, nil
}

// usage reads a finished child's peak RSS and CPU time.
func usage(ps *os.ProcessState) drain {
	var d drain
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		d.maxRSSKiB = ru.Maxrss // KiB on Linux
	}
	d.cpuSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
	return d
}

// tpResult is the throughput figure: best rows/s of each side.
type tpResult struct {
	pgtide, reference float64
}

// throughput runs the backlog part: slots first, then the backlog, then
// alternating drains, pgtide first.
func (b *bench) throughput(ctx context.Context) (tpResult, error) {
	cfg := b.cfg
	var slots []string
	for i := 1; i <= cfg.reps; i++ {
		if i > 1 {
			slots = append(slots, fmt.Sprintf("pgtide_%d", i))
		}
		slots = append(slots, fmt.Sprintf("ref_%d", i))
	}
	if err := b.createSlots(ctx, slots...); err != nil {
		return tpResult{}, err
	}

	fmt.Printf("\n== throughput: %d rows in transactions of %d rows ==\n", cfg.rows, cfg.txRows)
	end, err := b.generate(ctx, 1, cfg.rows, cfg.txRows)
	if err != nil {
		return tpResult{}, err
	}

	var best tpResult
	for i := 1; i <= cfg.reps; i++ {
		spec := childSpec{BatchRows: cfg.batchRows, VerifyRows: b.verifyRows(cfg.rows)}
		if cfg.cpuProfile != "" {
			spec.CPUProfile = cfg.cpuProfile
			if i > 1 {
				spec.CPUProfile += fmt.Sprintf(".%d", i)
			}
		}
		p, err := b.pgtideDrain(ctx, fmt.Sprintf("pgtide_%d", i), end, spec)
		if err != nil {
			return tpResult{}, err
		}
		report("pgtide", i, cfg.rows, p)
		best.pgtide = max(best.pgtide, p.rate(cfg.rows))

		r, err := b.refDrain(ctx, fmt.Sprintf("ref_%d", i), end)
		if err != nil {
			return tpResult{}, err
		}
		report("pg_recvlogical", i, cfg.rows, r)
		best.reference = max(best.reference, r.rate(cfg.rows))
	}
	fmt.Printf("best: pgtide %.0f rows/s, pg_recvlogical %.0f rows/s, ratio %.2f\n",
		best.pgtide, best.reference, best.pgtide/best.reference)

	if err := b.dropSlots(ctx, append(slots, "pgtide_1")...); err != nil {
		return tpResult{}, err
	}
	return best, nil
}

// memResult is the memory figure: peak RSS of each side, in MiB.
type memResult struct {
	pgtide, reference float64
}

// memory runs the large-transaction part on an emptied table. pgtide
// drains it twice: once watching the slot to see the end (the figure),
// once reading the log's tail every 5 ms as the throughput part does,
// which keeps the file store's block caches alive (see waitSlot).
func (b *bench) memory(ctx context.Context) (*memResult, error) {
	rows := b.cfg.rows5m
	fmt.Printf("\n== memory: one transaction of %d rows ==\n", rows)

	if err := b.pg.Exec(ctx, "postgres", "TRUNCATE bench"); err != nil {
		return nil, fmt.Errorf("truncate: %w", err)
	}
	slots := []string{"pgtide_mem", "pgtide_mem_tail", "ref_mem"}
	if err := b.createSlots(ctx, slots...); err != nil {
		return nil, err
	}
	end, err := b.generate(ctx, 1, rows, rows)
	if err != nil {
		return nil, err
	}

	fmt.Println("pgtide sees the end on the slot; pgtide+tail by reading the log's tail every 5 ms")
	p, err := b.pgtideDrain(ctx, "pgtide_mem", end, childSpec{
		BatchRows: b.cfg.batchRows, VerifyRows: b.verifyRows(rows), WaitSlot: true,
		CPUProfile: b.cfg.cpuProfile5m, HeapProfile: b.cfg.memProfile5m,
	})
	if err != nil {
		return nil, err
	}
	report("pgtide", 1, rows, p)

	tailSpec := childSpec{BatchRows: b.cfg.batchRows}
	if b.cfg.memProfile5m != "" {
		tailSpec.HeapProfile = b.cfg.memProfile5m + ".tail"
	}
	tail, err := b.pgtideDrain(ctx, "pgtide_mem_tail", end, tailSpec)
	if err != nil {
		return nil, err
	}
	report("pgtide+tail", 1, rows, tail)

	r, err := b.refDrain(ctx, "ref_mem", end)
	if err != nil {
		return nil, err
	}
	report("pg_recvlogical", 1, rows, r)

	if err := b.dropSlots(ctx, slots...); err != nil {
		return nil, err
	}
	return &memResult{pgtide: p.maxRSSMiB(), reference: r.maxRSSMiB()}, nil
}

// verifyRows is the record count a child checks after its drain, 0 when
// -verify is off.
func (b *bench) verifyRows(rows int) int {
	if !b.cfg.verify {
		return 0
	}
	return rows
}

// report prints one drain.
func report(who string, run, rows int, d drain) {
	fmt.Printf("%-14s run %d: %d rows in %6.2f s = %7.0f rows/s; CPU %.2f s (%.2f cores), "+
		"walsender %.2f s (%.2f cores); peak RSS %.1f MiB",
		who, run, rows, d.seconds, d.rate(rows), d.cpuSeconds, d.cpuSeconds/d.seconds,
		d.senderSeconds, d.senderSeconds/d.seconds, d.maxRSSMiB())
	if d.messages > 0 {
		fmt.Printf(" (%.1f MiB before the drain, growth %.1f MiB); %d log messages",
			float64(d.baseKiB)/1024, float64(d.maxRSSKiB-d.baseKiB)/1024, d.messages)
	}
	fmt.Println()
}
