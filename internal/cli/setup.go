package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/config"
)

func (e *env) setupCommand() *cobra.Command {
	var names []string
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Prepare the source databases for capture",
		Long: "setup installs or checks what capture needs in each source database: the\n" +
			"pgtide schema, the publications and their table lists, the DDL event\n" +
			"trigger and the replication slot. It is idempotent, and `up` runs it too;\n" +
			"run it alone to see what it changes, or once as a privileged role.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			sources, err := selectSources(cfg, names)
			if err != nil {
				return err
			}
			return e.runSetup(cmd.Context(), cfg, sources)
		},
	}
	cmd.Flags().StringSliceVar(&names, "source", nil, "names of the sources to set up (default: all)")
	return cmd
}

// runSetup sets up each source and reports what it did. A failed source
// does not stop the others; the error lists every failure.
func (e *env) runSetup(ctx context.Context, cfg config.Config, sources []config.SourceConfig) error {
	logger := newLogger(cfg.Log, e.stderr)
	n := &node{cfg: cfg, logger: logger}

	var errs []error
	for _, s := range sources {
		fmt.Fprintf(e.stdout, "source %s (%s)\n", s.Name, s.RedactedDSN())
		opts := n.captureOptions(s, nil)
		res, err := capture.Setup(ctx, opts)
		if err != nil {
			fmt.Fprintf(e.stdout, "  FAILED: %v\n", err)
			errs = append(errs, fmt.Errorf("set up source %s: %w", s.Name, err))
			continue
		}
		printSetup(e.stdout, s, res)
	}
	return errors.Join(errs...)
}

// printSetup writes what capture.Setup did for source s.
func printSetup(w io.Writer, s config.SourceConfig, res capture.SetupResult) {
	if res.SlotDeferred {
		fmt.Fprintf(w, "  slot %s: created by capture on its first start, with the initial snapshot\n", s.Slot)
	} else if res.SlotCreated {
		fmt.Fprintf(w, "  slot %s: created\n", s.Slot)
	} else {
		fmt.Fprintf(w, "  slot %s: exists\n", s.Slot)
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(w, "  publication %s: up to date\n", s.Publication)
	}
	for _, c := range res.Changes {
		fmt.Fprintf(w, "  publication: %s\n", c)
	}
	for _, t := range res.Keyless {
		fmt.Fprintf(w, "  WARNING: table %s has no primary key or replica identity: %s\n", t, keylessHint)
	}
}
