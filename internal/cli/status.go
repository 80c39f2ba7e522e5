package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgtide/pgtide/internal/changelog"
	"github.com/pgtide/pgtide/internal/config"
)

// statusDoc is the document served on /v1/status and read by
// `pgtide status`.
type statusDoc struct {
	Version   string         `json:"version"`
	StartedAt time.Time      `json:"started_at"`
	Ready     bool           `json:"ready"`
	NATSURL   string         `json:"nats_url,omitempty"`
	Embedded  bool           `json:"embedded_log"`
	Sources   []sourceStatus `json:"sources"`
	// Replicas are the replicas this process applies to.
	Replicas []replicaStatus `json:"replicas,omitempty"`
	Gateway  *gatewayStatus  `json:"gateway,omitempty"`
	Proxy    *proxyStatus    `json:"proxy,omitempty"`
}

// sourceStatus is the state of one source and its log stream.
type sourceStatus struct {
	Name         string     `json:"name"`
	DSN          string     `json:"dsn"` // password redacted
	Slot         string     `json:"slot"`
	State        string     `json:"state"`
	Streaming    bool       `json:"streaming"`
	ConfirmedLSN string     `json:"confirmed_lsn,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	Log          *logStatus `json:"log,omitempty"`
	LogError     string     `json:"log_error,omitempty"`

	// Snapshot is the progress of this process's latest initial snapshot.
	Snapshot *snapshotProgress `json:"snapshot,omitempty"`
	// Backfills are the queued and running online backfills, per table.
	Backfills []backfillProgress `json:"backfills,omitempty"`
}

// snapshotProgress is the progress of an initial snapshot.
type snapshotProgress struct {
	RowsDone      int64   `json:"rows_done"`
	RowsEstimated int64   `json:"rows_estimated"`
	ETASeconds    float64 `json:"eta_seconds,omitempty"`
	Done          bool    `json:"done,omitempty"`
}

// backfillProgress is the progress of one table of an online backfill.
type backfillProgress struct {
	ID    string `json:"id"`
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	Done  bool   `json:"done"`
}

// logStatus is the extent of a source's stream in the change log.
type logStatus struct {
	Stream   string    `json:"stream"`
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	Messages uint64    `json:"messages"`
	Bytes    uint64    `json:"bytes"`
	LastTime time.Time `json:"last_time,omitzero"`
}

// status builds the status document.
func (n *node) status(ctx context.Context) statusDoc {
	doc := statusDoc{
		Version:   version(),
		StartedAt: n.started.UTC(),
		Ready:     n.ready() == nil,
		NATSURL:   redactURLs(n.natsURL()),
		Embedded:  n.log != nil && n.log.Embedded(),
		Sources:   []sourceStatus{},
	}
	if n.gw != nil {
		doc.Gateway = &gatewayStatus{
			URL:     n.gwURL,
			Mounted: n.cfg.Gateway.Mounted(),
			Auth:    n.cfg.Gateway.AuthEnabled(),
		}
	}
	if n.proxy != nil {
		doc.Proxy = n.proxy.status(ctx)
	}
	for _, r := range n.sources {
		st := r.snapshot()
		info, err := n.log.Info(ctx, r.cfg.Name)
		if err != nil {
			st.LogError = err.Error()
		} else {
			st.Log = &logStatus{
				Stream:   changelog.StreamName(r.cfg.Name),
				FirstSeq: info.FirstSeq,
				LastSeq:  info.LastSeq,
				Messages: info.Msgs,
				Bytes:    info.Bytes,
				LastTime: info.LastTime.UTC(),
			}
		}
		doc.Sources = append(doc.Sources, st)
	}
	for _, r := range n.replicas {
		doc.Replicas = append(doc.Replicas, r.status())
	}
	return doc
}

func (e *env) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the state of a running pgtide",
		Long: "status asks the admin server of a running pgtide (admin.listen, or\n" +
			"--admin-listen) for its state and prints its sources, their replication\n" +
			"progress and their change log streams, its replicas with their apply\n" +
			"lag, and the offline-database proxy: its datasets, snapshots, instances\n" +
			"and connections.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := e.loadConfig(nil)
			if err != nil {
				return err
			}
			return e.runStatus(cmd.Context(), cfg, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON status document")
	return cmd
}

func (e *env) runStatus(ctx context.Context, cfg config.Config, asJSON bool) error {
	base, err := adminBaseURL(cfg)
	if err != nil {
		return err
	}
	url := base + "/v1/status"
	body, err := fetchStatusBody(ctx, url)
	if err != nil {
		return err
	}

	if asJSON {
		_, err := e.stdout.Write(body)
		return err
	}
	var doc statusDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("status from %s is not a pgtide status document: %w", url, err)
	}
	return printStatus(e.stdout, doc)
}

// fetchStatusBody returns the body of GET url, the status document.
func fetchStatusBody(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask pgtide at %s: %w "+
			"(is pgtide running, and is --admin-listen its admin address?)", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read status from %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status from %s: %s", url, resp.Status)
	}
	return body, nil
}

// printStatus writes doc as a table.
func printStatus(w io.Writer, doc statusDoc) error {
	ready := "ready"
	if !doc.Ready {
		ready = "NOT READY"
	}
	logMode := "external"
	if doc.Embedded {
		logMode = "embedded"
	}
	nats := doc.NATSURL
	if nats == "" {
		nats = "(in-process only)"
	}
	fmt.Fprintf(w, "pgtide %s, %s, up %s\n", doc.Version, ready,
		time.Since(doc.StartedAt).Round(time.Second))
	if len(doc.Sources) == 0 && len(doc.Replicas) == 0 && doc.Proxy != nil {
		return printProxyStatus(w, doc.Proxy)
	}
	fmt.Fprintf(w, "change log: %s, %s\n\n", logMode, nats)
	if len(doc.Sources) == 0 && len(doc.Replicas) > 0 {
		return printReplicas(w, doc.Replicas)
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSTATE\tSLOT\tCONFIRMED LSN\tLOG FIRST\tLOG LAST\tMESSAGES\tLAST ERROR")
	for _, s := range doc.Sources {
		first, last, msgs := "-", "-", "-"
		if s.Log != nil {
			first = fmt.Sprint(s.Log.FirstSeq)
			last = fmt.Sprint(s.Log.LastSeq)
			msgs = fmt.Sprint(s.Log.Messages)
		}
		lastErr := s.LastError
		if lastErr == "" && s.LogError != "" {
			lastErr = "log: " + s.LogError
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, s.Slot,
			dash(s.ConfirmedLSN), first, last, msgs, dash(truncate(lastErr, 80)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printProgress(w, doc.Sources)
	if len(doc.Replicas) > 0 {
		fmt.Fprintln(w)
		if err := printReplicas(w, doc.Replicas); err != nil {
			return err
		}
	}
	if doc.Gateway != nil {
		auth := "no auth"
		if doc.Gateway.Auth {
			auth = "tokens/JWT required"
		}
		fmt.Fprintf(w, "\ngateway: %s (%s)\n", doc.Gateway.URL, auth)
	}
	if doc.Proxy != nil {
		fmt.Fprintln(w)
		return printProxyStatus(w, doc.Proxy)
	}
	return nil
}

// printProgress writes the snapshot and backfill progress of sources that
// have any.
func printProgress(w io.Writer, sources []sourceStatus) {
	for _, s := range sources {
		if sn := s.Snapshot; sn != nil {
			fmt.Fprintf(w, "\n%s snapshot: %s\n", s.Name, formatSnapshot(*sn))
		}
		if len(s.Backfills) > 0 {
			fmt.Fprintf(w, "\n%s backfills:\n", s.Name)
			for _, b := range s.Backfills {
				state := "queued"
				switch {
				case b.Done:
					state = "done"
				case b.Rows > 0:
					state = "running"
				}
				fmt.Fprintf(w, "  %s  %s  %d rows  %s\n", b.ID, b.Table, b.Rows, state)
			}
		}
	}
}

// formatSnapshot describes snapshot progress: rows done of the estimate,
// and the time left while it runs.
func formatSnapshot(p snapshotProgress) string {
	s := fmt.Sprintf("%d rows", p.RowsDone)
	if p.Done {
		return s + ", done"
	}
	if p.RowsEstimated > 0 {
		pct := min(100, 100*float64(p.RowsDone)/float64(p.RowsEstimated))
		s += fmt.Sprintf(" of ~%d (%.0f%%)", p.RowsEstimated, pct)
	}
	if p.ETASeconds > 0 {
		s += ", ETA " + (time.Duration(p.ETASeconds * float64(time.Second))).Round(time.Second).String()
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// dialAddr turns a listen address into one a client can dial: an empty or
// unspecified host becomes loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// printReplicas writes the replicas as a table.
func printReplicas(w io.Writer, replicas []replicaStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tSOURCE\tSTATE\tAPPLIED\tLAG\tLAG BYTES\tROWS/S\tLAST ERROR")
	for _, r := range replicas {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%.0f\t%s\n", r.Name, r.Source, r.State,
			dash(r.AppliedID), formatLag(r.LagSeconds), r.LagBytes, r.RowsPerSecond,
			dash(truncate(r.LastError, 80)))
	}
	return tw.Flush()
}

// formatLag formats a lag in seconds: "0.2s", "12s", "3m4s".
func formatLag(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", sec)
	default:
		return d.Round(time.Second).String()
	}
}
