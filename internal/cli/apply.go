package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/apply"
	"github.com/pgtide/pgtide/internal/config"
)

func (e *env) applyCommand() *cobra.Command {
	var names []string
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Run the appliers of replicas alone",
		Long: "apply keeps the configured replicas (or those named by --replica) in\n" +
			"step with their sources by applying the change log, and serves the\n" +
			"admin endpoints (status, metrics, /readyz), without capture or the other\n" +
			"roles. It reads the log like `log tail`: through nats.url, else the\n" +
			"embedded server of a running pgtide (nats.embedded.listen), else the\n" +
			"store under data_dir. Each replica's source must be configured (its DSN\n" +
			"serves the schema copy and the sequences). Give --admin-listen another\n" +
			"address (or off) when a pgtide up on this machine uses the default.\n\n" +
			"`pgtide up` runs the same appliers next to capture. Before a cut-over,\n" +
			"once the replica caught up, run `pgtide apply sync-sequences`.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			replicas, err := selectReplicas(cfg, names)
			if err != nil {
				return err
			}
			return e.runNode(cmd.Context(), cfg, nodeRoles{replicas: replicas})
		},
	}
	cmd.Flags().StringSliceVar(&names, "replica", nil, "names of the replicas to apply to (default: all)")
	cmd.AddCommand(e.syncSequencesCommand())
	return cmd
}

func (e *env) syncSequencesCommand() *cobra.Command {
	var names []string
	cmd := &cobra.Command{
		Use:   "sync-sequences",
		Short: "Set the replicas' sequences to the source's values now",
		Long: "sync-sequences sets every sequence of the configured replicas (or those\n" +
			"named by --replica) to the value of the source's sequence of the same\n" +
			"name, and prints how many it set. Logical decoding carries no sequence\n" +
			"values: the appliers sync them every replicas[].sequence_sync_interval,\n" +
			"and a cut-over runs this once writes to the source have stopped and the\n" +
			"replica caught up (pgtide status shows its lag). It needs the source and\n" +
			"the targets, not the change log, and may run while appliers run.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			replicas, err := selectReplicas(cfg, names)
			if err != nil {
				return err
			}
			return e.runSyncSequences(cmd.Context(), cfg, replicas)
		},
	}
	cmd.Flags().StringSliceVar(&names, "replica", nil, "names of the replicas to sync (default: all)")
	return cmd
}

// runSyncSequences syncs the sequences of each replica, going on past a
// failing one, and returns every failure.
func (e *env) runSyncSequences(ctx context.Context, cfg config.Config, replicas []config.ReplicaConfig) error {
	logger := newLogger(cfg.Log, e.stderr)
	var errs []error
	for _, r := range replicas {
		src, _ := cfg.Source(r.Source)
		// SyncSequences needs no change log: a cut-over must not depend
		// on reaching it.
		opts := applyOptions(r, src, nil, nil, logger)
		a, err := apply.New(opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("replica %s: %w", r.Name, err))
			continue
		}
		n, err := a.SyncSequences(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("replica %s: %w", r.Name, err))
			continue
		}
		fmt.Fprintf(e.stdout, "replica %s: %d sequences set to the values of source %s\n", r.Name, n, r.Source)
	}
	return errors.Join(errs...)
}
