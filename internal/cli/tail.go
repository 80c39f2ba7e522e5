package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/config"
)

// tailOptions are the flags of `log tail`.
type tailOptions struct {
	source string
	tables []string
	from   string
	json   bool
	follow bool
	limit  int
}

func (e *env) logCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Read the change log",
		Args:  noArgs,
	}
	cmd.AddCommand(e.tailCommand())
	return cmd
}

func (e *env) tailCommand() *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print the records of the change log",
		Long: "tail prints the change records of one source, one line each, or one JSON\n" +
			"object each with --json. It reads the log through nats.url when set;\n" +
			"otherwise through the embedded server of a running pgtide\n" +
			"(nats.embedded.listen); otherwise it opens the store under data_dir\n" +
			"itself, which works only while no pgtide process uses it.\n\n" +
			"Human lines read:\n\n" +
			"  <commit time> <lsn:pos> <op> schema.table key={…} new={col=val, …} (commit)\n\n" +
			"where \"(commit)\" marks the last record of a transaction. Long values\n" +
			"are cut at 60 characters; --json carries every value in full.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			return e.runTail(cmd.Context(), cfg, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "", "source to read (default: the only one configured or in the log)")
	f.StringSliceVar(&o.tables, "tables", nil,
		`tables to show, as schema.table or table; '*' and '?' are wildcards ("public.*", "ord*")`)
	f.StringVar(&o.from, "from", "",
		"where to start: beginning, now or a log sequence number "+
			"(default: now when following, else beginning)")
	f.BoolVar(&o.json, "json", false, "print one JSON object per record")
	f.BoolVar(&o.follow, "follow", true,
		"keep waiting for new records; --follow=false stops at the end of the log")
	f.IntVarP(&o.limit, "limit", "n", 0, "stop after this many records (0: no limit)")
	return cmd
}

// tailStart says where a tail begins.
type tailStart struct {
	seq uint64 // first sequence; 0 is the oldest kept
	now bool   // only records stored after the tail starts
}

func parseFrom(from string, follow bool) (tailStart, error) {
	switch from {
	case "":
		return tailStart{now: follow}, nil
	case "beginning":
		return tailStart{}, nil
	case "now":
		return tailStart{now: true}, nil
	}
	seq, err := strconv.ParseUint(from, 10, 64)
	if err != nil || seq == 0 {
		return tailStart{}, usageErrorf(
			"--from %q: use beginning, now or a log sequence number (1 or more)", from)
	}
	return tailStart{seq: seq}, nil
}

func (e *env) runTail(ctx context.Context, cfg config.Config, o tailOptions) error {
	start, err := parseFrom(o.from, o.follow)
	if err != nil {
		return err
	}
	if o.limit < 0 {
		return usageErrorf("-n %d: use 0 (no limit) or more", o.limit)
	}
	logger := newLogger(cfg.Log, e.stderr)

	l, closeLog, err := openLogReader(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeLog()

	source, err := resolveSource(ctx, l, cfg, o.source)
	if err != nil {
		return err
	}
	filter, err := newTableFilter(source, o.tables)
	if err != nil {
		return err
	}

	p := newRecordPrinter(e.stdout, o.json)
	printed := 0
	handle := func(m *changelog.Message) error {
		if !filter.match(m.Subject) {
			return nil
		}
		b, err := decodeMessage(m)
		if err != nil {
			return err
		}
		for _, r := range b.Records() {
			if err := p.print(r); err != nil {
				return err
			}
			printed++
			if o.limit > 0 && printed >= o.limit {
				if err := p.flush(); err != nil {
					return err
				}
				return changelog.ErrStop
			}
		}
		return p.flush()
	}

	if o.follow {
		err = l.Read(ctx, source, changelog.ReadOptions{
			StartSeq:   start.seq,
			DeliverNew: start.now,
			Filters:    filter.serverFilters(),
		}, handle)
	} else if !start.now {
		// ReadRange has no server-side filter; handle matches each
		// message itself.
		err = l.ReadRange(ctx, source, start.seq, 0, handle)
	}

	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("the change log has no stream for source %q yet: capture creates it when it "+
			"first starts", source)
	case err != nil && ctx.Err() != nil:
		return nil // interrupted
	case errors.Is(err, changelog.ErrStop):
		return nil
	}
	if err != nil {
		return err
	}
	return p.flush()
}

// decodeMessage decodes the change batch of a log message.
func decodeMessage(m *changelog.Message) (*change.Batch, error) {
	b, err := change.DecodeBatch(m.Data)
	if err != nil {
		return nil, fmt.Errorf("log message %d (%s) is not a change batch: %w", m.Seq, m.Subject, err)
	}
	return b, nil
}
