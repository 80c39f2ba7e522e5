package cli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pgtide/pgtide/internal/config"
)

// demoReplica names the demo's replica and its database, which an applier
// keeps in step with the demo database on the same cluster.
const demoReplica = "demo_replica"

// demoReplicaReport is how often the demo prints the replica's lag.
const demoReplicaReport = 10 * time.Second

// configureDemoReplica adds the demo's replica: the database at dsn, whose
// schema the applier copies from the source.
func configureDemoReplica(cfg *config.Config, dsn string) {
	cfg.Replicas = []config.ReplicaConfig{{Name: demoReplica, Source: demoSource, DSN: dsn}}
	cfg.ApplyDefaults()
}

// reportDemoReplica prints the replica's lag and the records applied to
// it every demoReplicaReport, and once more when stopped. The returned
// function stops the reports and waits for the last one.
func reportDemoReplica(ctx context.Context, n *node, w io.Writer) (stop func()) {
	if len(n.replicas) == 0 {
		return func() {}
	}
	r := n.replicas[0]
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(demoReplicaReport)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				fmt.Fprintln(w, demoReplicaLine(n, r))
				return
			case <-t.C:
				fmt.Fprintln(w, demoReplicaLine(n, r))
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// demoReplicaLine describes the replica r: its state when it does not
// apply, its lag and the records applied to it by this process.
func demoReplicaLine(n *node, r *replicaRunner) string {
	st := r.status()
	line := fmt.Sprintf("replica %s: lag %s, %d rows applied", st.Name, formatLag(st.LagSeconds),
		n.appliedRecords(st.Source))
	if st.State != replicaApplying {
		line += " (" + st.State + ")"
	}
	if st.LastError != "" {
		line += ": " + st.LastError
	}
	return line
}

// appliedRecords sums the records this process applied from source, as
// the apply metrics count them.
func (n *node) appliedRecords(source string) int64 {
	families, err := n.reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != "pgtide_apply_records_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "source" && l.GetValue() == source {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return int64(sum)
}
