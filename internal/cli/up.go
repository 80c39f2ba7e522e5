package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/config"
)

func (e *env) upCommand() *cobra.Command {
	var dsn, name string
	var replicaDSNs []string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run pgtide: capture every source into the change log",
		Long: "up runs every pgtide role in one process: an embedded change log under\n" +
			"data_dir (unless nats.url names an external cluster), the capture of each\n" +
			"configured source, the offline-database proxy when datasets are configured\n" +
			"(and proxy.listen is not off), the stream gateway (on the admin listener,\n" +
			"or on gateway.listen when set; gateway.listen: off disables it), and the\n" +
			"admin server, and the applier of each configured replica. It sets each\n" +
			"source up first (slot, publications, DDL trigger), and stops cleanly on\n" +
			"SIGINT or SIGTERM.\n\n" +
			"Without a config file, --source names the one database to capture, and\n" +
			"--replica a database to keep in step with it (its schema is copied when\n" +
			"it holds no table, then the existing rows and every change):\n\n" +
			"  pgtide up --source postgres://pgtide:secret@db:5432/shop \\\n" +
			"            --replica postgres://postgres:secret@replica:5432/shop",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name != "" && dsn == "" {
				return usageErrorf("--name needs --source DSN")
			}
			cfg, err := e.loadConfig(func(c *config.Config) error {
				if dsn != "" {
					if err := setSourceDSN(c, dsn, name); err != nil {
						return err
					}
				}
				for _, r := range replicaDSNs {
					if err := setReplicaDSN(c, r); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			roles := nodeRoles{
				sources:  cfg.Sources,
				proxy:    cfg.ProxyEnabled(),
				gateway:  cfg.Gateway.Listen != config.Off,
				replicas: cfg.Replicas,
			}
			if roles.gateway {
				if err := checkMountedGateway(cfg); err != nil {
					return err
				}
			}
			return e.runNode(cmd.Context(), cfg, roles)
		},
	}
	cmd.Flags().StringVar(&dsn, "source", "",
		"connection string of a database to capture (like PGTIDE_SOURCE_DSN)")
	cmd.Flags().StringVar(&name, "name", "",
		"name of the --source database; default: its database name")
	cmd.Flags().StringArrayVar(&replicaDSNs, "replica", nil,
		"connection string of a database to keep in step with the only source (repeatable)")
	return cmd
}

func (e *env) captureCommand() *cobra.Command {
	var names []string
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Run the capture role alone",
		Long: "capture streams the configured sources (or those named by --source)\n" +
			"into the change log and serves the admin endpoints, without the other\n" +
			"roles. Run several capture processes against an external NATS cluster\n" +
			"(nats.url) to spread sources over machines.",
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
			return e.runNode(cmd.Context(), cfg, nodeRoles{sources: sources})
		},
	}
	cmd.Flags().StringSliceVar(&names, "source", nil, "names of the sources to capture (default: all)")
	return cmd
}

// runNode runs roles until ctx ends, every source has failed, or the
// proxy stopped serving.
func (e *env) runNode(ctx context.Context, cfg config.Config, roles nodeRoles) error {
	if len(roles.sources) == 0 && !roles.proxy && len(roles.replicas) == 0 {
		return errNoSource()
	}
	logger := newLogger(cfg.Log, e.stderr)
	attrs := []any{
		"version", version(),
		"sources", describeSources(roles.sources),
		"data_dir", cfg.DataDir,
	}
	if roles.proxy {
		attrs = append(attrs, "datasets", datasetNames(cfg))
	}
	if len(roles.replicas) > 0 {
		attrs = append(attrs, "replicas", replicaNames(roles.replicas))
	}
	logger.Info("pgtide starting", attrs...)

	n, err := startNode(ctx, cfg, roles, logger)
	if err != nil {
		return err
	}
	err = n.wait(ctx)
	if ctx.Err() != nil {
		logger.Info("shutting down", "cause", context.Cause(ctx))
	}
	n.close()
	logger.Info("pgtide stopped")
	return err
}
