package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// printProxyStatus writes the proxy part of the status document: the
// datasets with their schedules, the snapshots, the instances and the
// client connections.
func printProxyStatus(w io.Writer, p *proxyStatus) error {
	fmt.Fprintf(w, "offline databases: proxy on %s, %d connections, %d instances\n",
		p.Listen, len(p.Connections), len(p.Instances))
	if p.Error != "" {
		fmt.Fprintf(w, "status error: %s\n", p.Error)
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nDATASET\tSCHEDULE\tNEXT RUN\tLAST RUN\tLAST SNAPSHOT\tLAST ERROR")
	for _, d := range p.Datasets {
		next := "-"
		switch {
		case d.Running:
			next = "running"
		case !d.NextRun.IsZero():
			next = "in " + time.Until(d.NextRun).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Schedule, next, timeOrDash(d.LastRun),
			dash(d.LastSnapshot), dash(truncate(d.LastError, 80)))
	}

	fmt.Fprintln(tw, "\nSNAPSHOT\tDATASET\tSTATE\tCREATED\tLSN\tSIZE")
	for _, s := range p.Snapshots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Dataset, s.State, timeOrDash(s.Created),
			dash(s.LSN), humanBytes(s.Size))
	}

	if len(p.Instances) > 0 {
		fmt.Fprintln(tw, "\nINSTANCE\tDATASET\tSNAPSHOT\tOWNER\tSTATE\tCONNECTIONS\tLAST USED")
		for _, in := range p.Instances {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", in.ID, in.Dataset, in.Snapshot, dash(in.Owner),
				in.State, in.Conns, timeOrDash(in.LastUsed))
		}
	}
	if len(p.Connections) > 0 {
		fmt.Fprintln(tw, "\nCONNECTION\tUSER\tDATABASE\tINSTANCE\tREMOTE\tSTATE\tSINCE")
		for _, c := range p.Connections {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, dash(c.User), dash(c.Database),
				dash(c.Instance), c.Remote, c.State, timeOrDash(c.Since))
		}
	}
	return tw.Flush()
}

// timeOrDash formats t in UTC to the second, or "-" when it is zero.
func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateTime)
}

// humanBytes formats n bytes with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
