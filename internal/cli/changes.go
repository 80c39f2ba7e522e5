package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/client"
	"github.com/pgtide/pgtide/internal/config"
)

// EnvToken is the environment variable `pgtide tail` reads its bearer
// token from when --token is not given, which keeps the token out of the
// process list.
const EnvToken = "PGTIDE_TOKEN"

// changesOptions are the flags of `tail`.
type changesOptions struct {
	source     string
	from       string
	json       bool
	url        string
	token      string
	cursorFile string
	ops        []string
	where      string
	limit      int
	websocket  bool
}

func (e *env) changesTailCommand() *cobra.Command {
	var o changesOptions
	cmd := &cobra.Command{
		Use:   "tail [TABLE...]",
		Short: "Follow changes through the stream gateway",
		Long: "tail subscribes to the stream gateway (of `pgtide up` on its admin\n" +
			"listener, or of `pgtide gateway`) and prints each change of the TABLEs\n" +
			"(schema.table, a bare name for any schema, '*' for a whole name; none\n" +
			"for every table), one line each, or one JSON object each with --json,\n" +
			"the gateway's JSON form of a change. It reconnects by itself and\n" +
			"resumes where it stopped.\n\n" +
			"Human lines read:\n\n" +
			"  <commit time> <lsn:pos> <op> schema.table key={…} new={col=val, …} (commit)\n\n" +
			"With --cursor-file, tail starts after the cursor that file holds (when\n" +
			"it exists) and keeps it updated after every change printed, so a\n" +
			"restarted tail neither skips nor repeats a change. The token comes from\n" +
			"--token or " + EnvToken + ".",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("token") {
				o.token = os.Getenv(EnvToken)
			}
			return e.runChangesTail(cmd.Context(), cfg, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.source, "source", "", "source to follow (default: the only one)")
	f.StringVar(&o.from, "from", "now", "where to start: beginning, now or a cursor")
	f.BoolVar(&o.json, "json", false, "print one JSON object per change")
	f.StringVar(&o.url, "url", "",
		"base URL of the gateway (default: gateway.listen when set, else admin.listen)")
	f.StringVar(&o.token, "token", "", "bearer token (default: $"+EnvToken+")")
	f.StringVar(&o.cursorFile, "cursor-file", "", "file to resume from and to keep the cursor in")
	f.StringSliceVar(&o.ops, "ops", nil, "operations to show (insert, update, delete, truncate, ddl, read)")
	f.StringVar(&o.where, "where", "", `row predicate, e.g. 'new.total > 100'`)
	f.IntVarP(&o.limit, "limit", "n", 0, "stop after this many changes (0: no limit)")
	f.BoolVar(&o.websocket, "websocket", false, "connect over WebSocket instead of Server-Sent Events")
	return cmd
}

// errTailDone ends a tail that printed its --limit.
var errTailDone = errors.New("limit reached")

func (e *env) runChangesTail(ctx context.Context, cfg config.Config, o changesOptions, tables []string) error {
	if o.limit < 0 {
		return usageErrorf("-n %d: use 0 (no limit) or more", o.limit)
	}
	base, err := tailURL(cfg, o.url)
	if err != nil {
		return err
	}
	source, err := tailSource(ctx, cfg, base, o.source)
	if err != nil {
		return err
	}

	from := o.from
	if o.cursorFile != "" {
		saved, err := readCursorFile(o.cursorFile)
		if err != nil {
			return err
		}
		if saved != "" {
			from = saved
		}
	}

	opts := client.Options{
		URL:    base,
		Token:  o.token,
		Logger: newLogger(cfg.Log, e.stderr).With("component", "client"),
	}
	if o.websocket {
		opts.Transport = client.WebSocket
	}
	c, err := client.New(opts)
	if err != nil {
		return usageErrorf("--url %q: %v", base, err)
	}

	sub := client.Subscription{Source: source, From: from, Ops: o.ops, Where: o.where}
	for _, t := range tables {
		if t = strings.TrimSpace(t); t != "" && !strings.Contains(t, ".") {
			t = "*." + t
		}
		sub.Tables = append(sub.Tables, t)
	}

	w := bufio.NewWriter(e.stdout)
	printed := 0
	err = c.Subscribe(ctx, sub, func(_ context.Context, ch *client.Change) error {
		if err := printChange(w, ch, o.json); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		// Saved here rather than through Options.OnCursor, which skips
		// a change its handler returned an error for: the change that
		// reaches -n is printed, so it is saved too.
		if o.cursorFile != "" {
			if err := writeCursorFile(o.cursorFile, ch.Cursor); err != nil {
				return err
			}
		}
		printed++
		if o.limit > 0 && printed >= o.limit {
			return errTailDone
		}
		return nil
	})
	var ce *client.Error
	switch {
	case errors.Is(err, errTailDone):
		return nil
	case ctx.Err() != nil:
		return nil // interrupted
	case client.IsCursorExpired(err):
		return fmt.Errorf("%w: the log no longer holds that position; start again with --from now "+
			"(or beginning), after removing the cursor file if there is one", err)
	case errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500:
		return &exitError{code: ExitConfig, err: err}
	}
	return err
}

// tailURL is the gateway's base URL: --url, else gateway.listen, else the
// admin listener of `pgtide up`.
func tailURL(cfg config.Config, flag string) (string, error) {
	switch {
	case flag != "":
		return strings.TrimRight(flag, "/"), nil
	case cfg.Gateway.Listen != "" && cfg.Gateway.Listen != config.Off:
		return gatewayURL(cfg.Gateway, cfg.Gateway.Listen), nil
	case cfg.Admin.Listen != config.Off:
		return "http://" + dialAddr(cfg.Admin.Listen), nil
	}
	return "", usageErrorf("no gateway address: give it with --url, e.g. --url http://127.0.0.1:7070")
}

// tailSource picks the source to follow: the one named, the only one
// configured, or the only one the pgtide at base reports.
func tailSource(ctx context.Context, cfg config.Config, base, name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if len(cfg.Sources) == 1 {
		return cfg.Sources[0].Name, nil
	}
	doc, err := fetchStatus(ctx, base)
	if err != nil {
		return "", usageErrorf("name the source with --source (asking %s for its sources failed: %v)",
			base, err)
	}
	switch len(doc.Sources) {
	case 1:
		return doc.Sources[0].Name, nil
	case 0:
		return "", usageErrorf("%s reports no source: name the source with --source", base)
	}
	return "", usageErrorf("%s captures several sources (%s): choose one with --source",
		base, strings.Join(statusSourceNames(doc), ", "))
}

func statusSourceNames(doc statusDoc) []string {
	names := make([]string, len(doc.Sources))
	for i, s := range doc.Sources {
		names[i] = s.Name
	}
	return names
}

// readCursorFile returns the cursor saved in path, "" when there is none.
func readCursorFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the cursor file: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// writeCursorFile replaces the cursor in path atomically, so a crash
// leaves the old cursor or the new one, never a torn one.
func writeCursorFile(path, cursor string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("save the cursor: %w", err)
	}
	_, err = tmp.WriteString(cursor + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save the cursor: %w", err)
	}
	return nil
}

// printChange writes ch as one line: its JSON form, or the human form of
// `log tail`.
func printChange(w io.Writer, ch *client.Change, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	_, err := w.Write(append(appendChange(nil, ch), '\n'))
	return err
}

// appendChange appends the human form of ch:
//
//	<commit time> <lsn:pos> <op> schema.table key={…} new={col=val, …} (commit)
func appendChange(b []byte, ch *client.Change) []byte {
	b = ch.CommitTime.UTC().AppendFormat(b, timeFormat)
	b = append(b, ' ')
	b = append(b, ch.LSN...)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(ch.Pos), 10)
	b = append(b, ' ')
	b = append(b, ch.Op...)
	if ch.Op == "commit" {
		return b
	}
	b = append(b, ' ')
	if ch.Op == "ddl" {
		var d struct {
			Tag       string `json:"tag"`
			Statement string `json:"statement"`
		}
		if json.Unmarshal(ch.DDL, &d) == nil {
			if d.Tag != "" {
				b = append(b, d.Tag...)
				b = append(b, ": "...)
			}
			stmt := strings.Join(strings.Fields(d.Statement), " ")
			b = append(b, truncate(stmt, maxStatementRunes)...)
		}
	} else {
		b = append(b, ch.Schema...)
		b = append(b, '.')
		b = append(b, ch.Table...)
		b = appendJSONRow(b, " key=", ch.Key, nil)
		b = appendJSONRow(b, " new=", ch.New, ch.Unchanged)
		if ch.Op != "delete" {
			b = appendJSONRow(b, " old=", ch.Old, nil)
		} else if !bytes.Equal(bytes.TrimSpace(ch.Old), bytes.TrimSpace(ch.Key)) {
			b = appendJSONRow(b, " old=", ch.Old, nil)
		}
	}
	if ch.Last {
		b = append(b, " (commit)"...)
	}
	return b
}

// appendJSONRow appends label and {col=val, …} for the JSON object row,
// in its order, then unchanged columns marked <unchanged>. A missing or
// null row appends nothing.
func appendJSONRow(b []byte, label string, row json.RawMessage, unchanged []string) []byte {
	row = bytes.TrimSpace(row)
	if len(row) == 0 || string(row) == "null" {
		return b
	}
	dec := json.NewDecoder(bytes.NewReader(row))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return append(append(b, label...), truncate(string(row), maxValueRunes)...)
	}
	b = append(b, label...)
	b = append(b, '{')
	first := true
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, name...)
		b = append(b, '=')
		b = appendJSONScalar(b, v)
	}
	for _, name := range unchanged {
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, name...)
		b = append(b, "=<unchanged>"...)
	}
	return append(b, '}')
}

// appendJSONScalar appends one column value: strings as text (quoted when
// ambiguous), everything else in its JSON form, cut to maxValueRunes.
func appendJSONScalar(b []byte, v json.RawMessage) []byte {
	var s string
	if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
		s = truncate(s, maxValueRunes)
		if needsQuote(s) {
			return strconv.AppendQuote(b, s)
		}
		return append(b, s...)
	}
	var compact bytes.Buffer
	if json.Compact(&compact, v) == nil {
		v = compact.Bytes()
	}
	return append(b, truncate(string(v), maxValueRunes)...)
}
