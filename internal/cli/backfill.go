package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/capture"
	"github.com/pgtide/pgtide/internal/config"
)

// backfillPoll is how often `snapshot backfill` asks for progress.
const backfillPoll = 500 * time.Millisecond

// backfillRequest is the body of POST /v1/backfill.
type backfillRequest struct {
	Source string   `json:"source"`
	Tables []string `json:"tables"`
}

// backfillResponse is the answer of POST /v1/backfill.
type backfillResponse struct {
	ID string `json:"id"`
}

// apiError is the body of an admin API error.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeAPIError answers with status and a JSON error body.
func writeAPIError(w http.ResponseWriter, status int, code, format string, args ...any) {
	var body apiError
	body.Error.Code = code
	body.Error.Message = fmt.Sprintf(format, args...)
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// serveBackfill answers POST /v1/backfill: it queues an online backfill of
// tables in the named source's capture (the only source when none is
// named) and returns its id.
func (n *node) serveBackfill(w http.ResponseWriter, r *http.Request) {
	var req backfillRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_request",
			`the body is not {"source": "...", "tables": ["schema.table", ...]}: %v`, err)
		return
	}
	if len(req.Tables) == 0 {
		writeAPIError(w, http.StatusBadRequest, "bad_request", "tables is empty: name at least one table")
		return
	}
	if slices.Contains(req.Tables, "") {
		writeAPIError(w, http.StatusBadRequest, "bad_request", "tables holds an empty name")
		return
	}

	var runner *sourceRunner
	switch {
	case req.Source == "" && len(n.sources) == 1:
		runner = n.sources[0]
	case req.Source == "":
		writeAPIError(w, http.StatusBadRequest, "bad_request", "source is required: this pgtide captures %s",
			strings.Join(sourceNames(n.sourceConfigs()), ", "))
		return
	default:
		i := slices.IndexFunc(n.sources, func(s *sourceRunner) bool { return s.cfg.Name == req.Source })
		if i < 0 {
			writeAPIError(w, http.StatusNotFound, "unknown_source", "no source %q here (sources: %s)",
				req.Source, strings.Join(sourceNames(n.sourceConfigs()), ", "))
			return
		}
		runner = n.sources[i]
	}

	c := runner.capture()
	if c == nil {
		st := runner.snapshot()
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable",
			"source %s is not capturing (%s): try again once it streams", st.Name, st.State)
		return
	}
	id, err := c.Backfill(r.Context(), req.Tables)
	if err != nil {
		if errors.Is(err, capture.ErrBackfillRequest) || errors.Is(err, capture.ErrBackfillUnsupported) {
			writeAPIError(w, http.StatusBadRequest, "bad_request", "%v", err)
			return
		}
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable", "%v", err)
		return
	}
	b, _ := json.Marshal(backfillResponse{ID: id})
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// backfillOptions are the flags of `snapshot backfill`.
type backfillOptions struct {
	source string
	noWait bool
}

func (e *env) snapshotBackfillCommand() *cobra.Command {
	var o backfillOptions
	cmd := &cobra.Command{
		Use:   "backfill TABLE...",
		Short: "Copy tables' current rows into the change log while changes keep flowing",
		Long: "backfill asks the running pgtide (admin.listen, or --admin-listen) to read\n" +
			"the current rows of each TABLE (schema.table, or a bare name in the source's\n" +
			"schemas) into the change log as read records, window by window, while the\n" +
			"stream goes on; a row changed meanwhile never appears older than its latest\n" +
			"change. Each table must be captured and have a primary key or replica\n" +
			"identity index. It shows the rows done per table until the backfill ends;\n" +
			"--no-wait returns once it is queued. A queued backfill survives restarts.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("%s needs at least one table", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			return e.runBackfill(cmd.Context(), cfg, o, args)
		},
	}
	cmd.Flags().StringVar(&o.source, "source", "", "source of the tables (default: the only one)")
	cmd.Flags().BoolVar(&o.noWait, "no-wait", false, "return once the backfill is queued")
	return cmd
}

func (e *env) runBackfill(ctx context.Context, cfg config.Config, o backfillOptions, tables []string) error {
	base, err := adminBaseURL(cfg)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(backfillRequest{Source: o.source, Tables: tables})
	var resp backfillResponse
	if err := postJSON(ctx, base+"/v1/backfill", body, &resp); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "backfill %s queued\n", resp.ID)
	if o.noWait {
		fmt.Fprintln(e.stdout, resp.ID)
		return nil
	}

	p := newProgressLine(e.stdout)
	t := time.NewTicker(backfillPoll)
	defer t.Stop()
	for {
		doc, err := fetchStatus(ctx, base)
		if err != nil {
			return err
		}
		src, ok := backfillSource(doc, o.source)
		if !ok {
			return fmt.Errorf("the status of %s does not list source %q", base, o.source)
		}
		var mine []backfillProgress
		for _, b := range src.Backfills {
			if b.ID == resp.ID {
				mine = append(mine, b)
			}
		}
		if len(mine) == 0 {
			// Finished long ago: capture keeps only recent ones.
			p.update(fmt.Sprintf("backfill %s: %s - done", resp.ID, strings.Join(tables, ", ")))
			p.finish()
			return nil
		}
		p.update(formatBackfill(resp.ID, mine))
		if !slices.ContainsFunc(mine, func(b backfillProgress) bool { return !b.Done }) {
			p.finish()
			return nil
		}

		select {
		case <-ctx.Done():
			p.finish()
			fmt.Fprintf(e.stderr, "stopped following; backfill %s goes on (see pgtide status)\n", resp.ID)
			return nil
		case <-t.C:
		}
	}
}

// backfillSource returns the status of the named source, or of the only
// one when name is empty.
func backfillSource(doc statusDoc, name string) (sourceStatus, bool) {
	if name == "" && len(doc.Sources) == 1 {
		return doc.Sources[0], true
	}
	for _, s := range doc.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return sourceStatus{}, false
}

// formatBackfill is the progress line of a running backfill: rows done
// per table.
func formatBackfill(id string, tables []backfillProgress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "backfill %s:", id)
	for i, t := range tables {
		if i > 0 {
			b.WriteByte(',')
		}
		state := "running"
		if t.Done {
			state = "done"
		}
		fmt.Fprintf(&b, " %s %d rows (%s)", t.Table, t.Rows, state)
	}
	return b.String()
}

// progressLine shows a changing status line: rewritten in place with '\r'
// on a terminal, one line per change otherwise.
type progressLine struct {
	w        io.Writer
	terminal bool
	last     string
	width    int // of the line on screen
}

func newProgressLine(w io.Writer) *progressLine {
	return &progressLine{w: w, terminal: isTerminal(w)}
}

func (p *progressLine) update(s string) {
	if s == p.last {
		return
	}
	p.last = s
	if !p.terminal {
		fmt.Fprintln(p.w, s)
		return
	}
	pad := ""
	if n := p.width - len(s); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", s, pad)
	p.width = len(s)
}

// finish ends the line on a terminal.
func (p *progressLine) finish() {
	if p.terminal && p.width > 0 {
		fmt.Fprintln(p.w)
		p.width = 0
	}
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// adminBaseURL is the base URL of the running pgtide's admin server.
func adminBaseURL(cfg config.Config) (string, error) {
	if cfg.Admin.Listen == config.Off {
		return "", usageErrorf("admin.listen is off, so there is no admin server to ask: " +
			"give the address of the running pgtide with --admin-listen")
	}
	return "http://" + dialAddr(cfg.Admin.Listen), nil
}

// postJSON posts body to url and decodes a 200 answer into out; an error
// answer comes back as its message.
func postJSON(ctx context.Context, url string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask pgtide at %s: %w (is pgtide running, and is --admin-listen its admin address?)",
			url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var ae apiError
		if json.Unmarshal(data, &ae) == nil && ae.Error.Message != "" {
			if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound {
				return usageErrorf("%s", ae.Error.Message)
			}
			return errors.New(ae.Error.Message)
		}
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the answer of %s is not what pgtide sends: %w", url, err)
	}
	return nil
}

// fetchStatus reads the status document of the pgtide at base.
func fetchStatus(ctx context.Context, base string) (statusDoc, error) {
	body, err := fetchStatusBody(ctx, base+"/v1/status")
	if err != nil {
		return statusDoc{}, err
	}
	var doc statusDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return statusDoc{}, fmt.Errorf("status from %s is not a pgtide status document: %w", base, err)
	}
	return doc, nil
}
