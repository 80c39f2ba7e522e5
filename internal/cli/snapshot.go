package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/config"
	"github.com/pgtide/pgtide/internal/instance"
	"github.com/pgtide/pgtide/internal/snapshot"
)

func (e *env) snapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Backfill captured tables; take, list and prune offline snapshots",
		Long: "snapshot backfill copies the current rows of captured tables into the\n" +
			"change log while changes keep flowing (an online backfill).\n\n" +
			"snapshot create, list and prune manage the physical snapshots the\n" +
			"offline-database proxy boots instances from. Each is a base backup of a\n" +
			"dataset's source, masked once by the dataset's rules and scripts, and kept\n" +
			"under data_dir/snapshots. The proxy role also takes them on each dataset's\n" +
			"schedule.",
		Args: noArgs,
	}
	cmd.AddCommand(e.snapshotBackfillCommand(), e.snapshotCreateCommand(), e.snapshotListCommand(),
		e.snapshotPruneCommand())
	return cmd
}

func (e *env) snapshotCreateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "create DATASET",
		Short: "Take a masked snapshot of a dataset now",
		Long: "create copies the dataset's source with the base-backup protocol, masks\n" +
			"the copy and records it as ready. It blocks until done; Ctrl-C cancels\n" +
			"and removes the partial snapshot. Old snapshots stay until `snapshot prune`\n" +
			"(or the proxy's schedule) removes them.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("%s takes one dataset name, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, m, err := e.snapshotManager(args[0])
			if err != nil {
				return err
			}
			busy, err := creating(ctx, m, args[0])
			if err != nil {
				return err
			}
			if busy != nil {
				return fmt.Errorf("%w: snapshot %s by process %d", errSnapshotBusy, busy.ID, busy.PID)
			}

			fmt.Fprintf(e.stderr, "taking a snapshot of %s from %s...\n", args[0],
				cfg.Datasets[args[0]].RedactedSource())
			start := time.Now()
			s, err := m.Create(ctx, args[0])
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", args[0], err)
			}
			fmt.Fprintf(e.stdout, "snapshot %s of %s ready: lsn %s, %s, in %s\n", s.ID, s.Dataset,
				dash(s.LSN), humanBytes(s.Size), time.Since(start).Round(100*time.Millisecond))
			return nil
		},
	}
}

// snapshotListItem is one line of `snapshot list --json`.
type snapshotListItem struct {
	snapshot.Snapshot
	InUse bool `json:"in_use"`
}

func (e *env) snapshotListCommand() *cobra.Command {
	var (
		asJSON  bool
		dataset string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the snapshots, oldest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, m, err := e.snapshotManager(dataset)
			if err != nil {
				return err
			}
			all, err := m.List(cmd.Context())
			if err != nil {
				return fmt.Errorf("list snapshots: %w", err)
			}
			used := instance.SnapshotsInUse(cfg.DataDir)
			items := []snapshotListItem{}
			for _, s := range all {
				if dataset == "" || s.Dataset == dataset {
					items = append(items, snapshotListItem{Snapshot: s, InUse: used[s.ID]})
				}
			}

			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(items)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SNAPSHOT\tDATASET\tSTATE\tCREATED\tLSN\tSIZE\tIN USE\tERROR")
			for _, it := range items {
				inUse := "-"
				if it.InUse {
					inUse = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.ID, it.Dataset, it.State,
					timeOrDash(it.Created), dash(it.LSN), humanBytes(it.Size), inUse,
					dash(truncate(it.Error, 80)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	cmd.Flags().StringVar(&dataset, "dataset", "", "list only this dataset's snapshots")
	return cmd
}

func (e *env) snapshotPruneCommand() *cobra.Command {
	var dataset string
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete old and failed snapshots",
		Long: "prune keeps the newest `keep` ready snapshots of each dataset and deletes\n" +
			"the older ones and the failed ones, except snapshots an instance uses.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, m, err := e.snapshotManager(dataset)
			if err != nil {
				return err
			}
			deleted, err := pruneDataset(cmd.Context(), m, cfg.DataDir, dataset, nil)
			for _, s := range deleted {
				fmt.Fprintf(e.stdout, "deleted %s (%s, %s)\n", s.ID, s.Dataset, s.State)
			}
			if err != nil {
				return err
			}
			if len(deleted) == 0 {
				fmt.Fprintln(e.stdout, "nothing to prune")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataset, "dataset", "", "prune only this dataset's snapshots")
	return cmd
}

// snapshotManager loads the configuration and returns it, with DataDir
// made absolute, and a snapshot manager for its datasets. A dataset name
// other than "" must be configured.
func (e *env) snapshotManager(dataset string) (config.Config, *snapshot.Manager, error) {
	cfg, err := e.loadConfig(nil)
	if err != nil {
		return config.Config{}, nil, err
	}
	if len(cfg.Datasets) == 0 {
		return config.Config{}, nil, usageErrorf("no datasets configured: list them under " +
			"datasets: in the config file given with --config (see docs/configuration.md)")
	}
	if _, ok := cfg.Datasets[dataset]; dataset != "" && !ok {
		return config.Config{}, nil, usageErrorf("no dataset %q in the configuration (configured: %s)",
			dataset, datasetNames(cfg))
	}

	cfg.DataDir, err = prepareDataDir(cfg.DataDir)
	if err != nil {
		return config.Config{}, nil, err
	}
	logger := newLogger(cfg.Log, e.stderr).With("component", "snapshots")
	m, err := snapshot.New(proxyConfig(cfg, cfg.DataDir, logger).SnapshotConfig())
	if err != nil {
		return config.Config{}, nil, err
	}
	return cfg, m, nil
}
