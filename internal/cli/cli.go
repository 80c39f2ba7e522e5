// Package cli implements the pgtide command line: the cobra commands, the
// loading of configuration from file, environment and flags, and the wiring
// of the change log, capture, apply, the stream gateway, the
// offline-database proxy with its snapshot schedule, and the admin server
// into running roles.
//
// # Exit codes
//
//	0  success, or a role stopped by SIGINT/SIGTERM
//	1  a runtime failure
//	2  a usage or configuration error
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of [Main].
const (
	ExitOK     = 0
	ExitError  = 1
	ExitConfig = 2
)

// exitError carries the exit code of a failed command. A config error
// prints its lines itself; the code tells Main what to return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf returns an error that exits with ExitConfig.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitConfig, err: fmt.Errorf(format, args...)}
}

// env is what every command shares: the output streams and the global
// flags.
type env struct {
	stdout, stderr io.Writer
	flags          globalFlags
}

// Main runs the pgtide command line with args (without the program name),
// writing results to stdout and diagnostics and logs to stderr, and
// returns the process exit code. Long-running roles stop when ctx ends;
// the caller cancels it on SIGINT or SIGTERM.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)

	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}

	code := ExitError
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else if strings.HasPrefix(err.Error(), "unknown command") {
		code = ExitConfig
	}

	var ce *configError
	if errors.As(err, &ce) {
		ce.print(stderr)
		return code
	}
	fmt.Fprintf(stderr, "pgtide: %v\n", err)
	if code == ExitConfig {
		fmt.Fprintln(stderr, "Run 'pgtide --help' for usage.")
	}
	return code
}

func (e *env) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "pgtide",
		Short: "PostgreSQL change data capture into a durable, replayable change log",
		Long: "pgtide captures every change of PostgreSQL databases through logical\n" +
			"replication and stores it in a durable change log (NATS JetStream,\n" +
			"embedded by default) that other roles and applications read.\n\n" +
			"Settings come from a YAML file (--config), then PGTIDE_* environment\n" +
			"variables, then flags. See docs/configuration.md.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitConfig, err: err}
	})
	root.CompletionOptions.HiddenDefaultCmd = true
	e.flags.register(root)

	root.AddCommand(
		e.upCommand(),
		e.captureCommand(),
		e.applyCommand(),
		e.gatewayCommand(),
		e.proxyCommand(),
		e.snapshotCommand(),
		e.setupCommand(),
		e.logCommand(),
		e.changesTailCommand(),
		e.statusCommand(),
		e.demoCommand(),
		e.versionCommand(),
	)
	return root
}

// noArgs rejects positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
