package apply

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestCrashExactlyOnce kills the applier (a child process) with SIGKILL at
// random moments while the workload runs on the source, restarts it each
// time, and checks that the target ends equal to the source: nothing lost,
// nothing applied twice, whatever moment the kill hit (inside a group,
// inside a COPY, inside DDL, between commit and acknowledgement).
func TestCrashExactlyOnce(t *testing.T) {
	e := newTestEnv(t)
	prepareWorkload(t, e)
	e.startCapture(t)
	// The schema copy is done once, by a clean in-process start.
	opts := e.applyOptions()
	opts.CreateSchema = true
	r := e.startApply(t, opts)
	for deadline := time.Now().Add(30 * time.Second); !r.a.Ready(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the applier did not start")
		}
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		runWorkload(t, e, 400)
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	kills := 0
	for running := true; running; {
		child := e.startChild(t)
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		kills++
		select {
		case <-done:
			running = false
		default:
		}
	}
	// A few more kills while the backlog drains.
	for range 3 {
		child := e.startChild(t)
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		kills++
	}
	t.Logf("applier killed %d times", kills)
	if t.Failed() {
		return
	}

	child := e.startChild(t)
	e.waitApplied(t, nil)
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Errorf("applier exited with %v after SIGTERM", err)
	}
	e.compareDatabases(t)
}

func (e *testEnv) startChild(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+e.dst, childLogEnv+"="+e.log.ClientURL())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start applier child: %v", err)
	}
	return cmd
}
