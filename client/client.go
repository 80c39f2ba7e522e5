// Package client subscribes to change streams of a pgtide gateway.
//
// A subscription delivers each change once, in log order, to a handler
// or through an iterator, over Server-Sent Events or WebSocket. When the
// connection breaks, or the gateway restarts or drops a slow client, the
// client reconnects with full-jitter exponential backoff and resumes just
// after the last change its handler accepted, so nothing is skipped or
// repeated. Options.OnCursor persists that position, so a restarted
// program resumes too (pass the saved cursor as Subscription.From).
//
//	c, err := client.New(client.Options{URL: "http://127.0.0.1:7070", Token: tok})
//	for ch, err := range c.Changes(ctx, client.Subscription{Source: "shop", Tables: []string{"public.orders"}}) {
//		if err != nil {
//			return err
//		}
//		var o Order
//		if err := ch.Decode(&o); err != nil {
//			return err
//		}
//		…
//	}
//
// Errors that retrying cannot fix (bad options, credentials, an expired
// cursor) end the subscription with an *Error; see [IsCursorExpired].
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Transport selects how the client connects.
type Transport int

// The transports.
const (
	SSE       Transport = iota // Server-Sent Events on /v1/changes (the default)
	WebSocket                  // WebSocket on /v1/ws
)

// Options configure a Client.
type Options struct {
	// URL is the gateway's base URL, e.g. "http://127.0.0.1:7070".
	URL string
	// Token is a bearer token; empty sends none.
	Token string
	// Transport is SSE (the default) or WebSocket.
	Transport Transport
	// HTTPClient makes SSE requests and WebSocket handshakes; nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the reconnection delay; zero means
	// 250ms and 30s. Each delay is drawn uniformly from zero to the
	// doubled previous bound (full jitter).
	MinBackoff, MaxBackoff time.Duration
	// OnCursor, when set, is called with the cursor of each change the
	// handler accepted, before the next change is handled; persist it to
	// resume after a restart. An error ends the subscription.
	OnCursor func(ctx context.Context, cursor string) error
	// Logger receives reconnection events; nil discards them.
	Logger *slog.Logger
}

// Subscription selects changes; see the gateway documentation for the
// meaning of each option.
type Subscription struct {
	Source       string
	Tables       []string
	Ops          []string
	Columns      []string
	Where        string
	Transactions bool
	Debounce     time.Duration
	// From is "beginning", "now" (the default) or a cursor.
	From string
}

// Change is one delivered change. Op "commit" marks the end of a
// transaction when Subscription.Transactions is set.
type Change struct {
	Cursor     string          `json:"cursor"`
	Source     string          `json:"source"`
	Op         string          `json:"op"`
	Schema     string          `json:"schema"`
	Table      string          `json:"table"`
	LSN        string          `json:"lsn"`
	Pos        uint32          `json:"pos"`
	Xid        uint32          `json:"xid"`
	CommitTime time.Time       `json:"commit_time"`
	Last       bool            `json:"last"`
	Key        json.RawMessage `json:"key,omitempty"`
	New        json.RawMessage `json:"new,omitempty"`
	Old        json.RawMessage `json:"old,omitempty"`
	Unchanged  []string        `json:"unchanged,omitempty"`
	DDL        json.RawMessage `json:"ddl,omitempty"`
}

// Decode decodes the row into v (a struct with json tags, or a map): the
// new row, or for a delete the old one (often only its key).
func (c *Change) Decode(v any) error {
	row := c.New
	if row == nil {
		row = c.Old
	}
	if row == nil {
		return fmt.Errorf("client: %s change of %s.%s has no row", c.Op, c.Schema, c.Table)
	}
	return json.Unmarshal(row, v)
}

// DecodeOld decodes the old row (or old key) into v.
func (c *Change) DecodeOld(v any) error {
	if c.Old == nil {
		return fmt.Errorf("client: %s change of %s.%s has no old row", c.Op, c.Schema, c.Table)
	}
	return json.Unmarshal(c.Old, v)
}

// Error is an error the gateway reported.
type Error struct {
	// Status is the HTTP status, or 0 for an error inside a stream.
	Status int
	// Code is the gateway's error code, e.g. "cursor_expired".
	Code    string `json:"code"`
	Message string `json:"message"`
	// Cursor, when set, is where to resume.
	Cursor string `json:"cursor"`
}

// Error returns the code and message.
func (e *Error) Error() string { return "pgtide gateway: " + e.Code + ": " + e.Message }

// retryable reports whether reconnecting may help.
func (e *Error) retryable() bool {
	switch e.Code {
	case "slow_consumer", "unavailable", "internal":
		return true
	}
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// IsCursorExpired reports whether err says the gateway's log no longer
// holds the subscription's position: the application must take a new
// snapshot and subscribe from "now".
func IsCursorExpired(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == "cursor_expired"
}

// Client subscribes to one gateway. It is safe for concurrent use.
type Client struct {
	opts Options
	base *url.URL
}

// New returns a client of the gateway at opts.URL.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: URL %q is not an http(s) URL", opts.URL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{opts: opts, base: u}, nil
}

// errHandlerStop ends a subscription from inside the iterator.
var errHandlerStop = errors.New("client: stop")

// Subscribe calls fn for each change of sub, in order, until ctx ends
// (it then returns ctx.Err()), fn returns an error (returned as is), or
// the gateway reports an error reconnecting cannot fix (an *Error). A
// change fn returned an error for is not acknowledged: resuming from the
// last persisted cursor delivers it again.
func (c *Client) Subscribe(ctx context.Context, sub Subscription, fn func(context.Context, *Change) error) error {
	cursor := sub.From
	backoff := c.opts.MinBackoff
	for {
		progressed := false
		err := c.stream(ctx, sub, cursor, func(ch *Change, start bool) error {
			if start {
				// The resolved start position: resuming from it after
				// a failure keeps "now" from moving forward.
				if cursor == "" || cursor == "now" || cursor == "beginning" {
					cursor = ch.Cursor
				}
				return nil
			}
			if err := fn(ctx, ch); err != nil {
				return err
			}
			if ch.Cursor != "" {
				cursor = ch.Cursor
				if c.opts.OnCursor != nil {
					if err := c.opts.OnCursor(ctx, cursor); err != nil {
						return err
					}
				}
			}
			progressed = true
			return nil
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ge *Error
		if errors.As(err, &ge) && !ge.retryable() {
			return err
		}
		if err != nil && !errors.As(err, &ge) && !isTransport(err) {
			return err // from fn or OnCursor
		}
		if progressed {
			backoff = c.opts.MinBackoff
		}
		delay := rand.N(backoff + 1)
		c.opts.Logger.Debug("gateway stream ended; reconnecting", "err", err, "delay", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		backoff = min(2*backoff, c.opts.MaxBackoff)
	}
}

// transportError marks failures of the connection, which are retried.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func isTransport(err error) bool {
	var te *transportError
	return errors.As(err, &te)
}

// Changes returns an iterator over the changes of sub; see Subscribe. The
// iteration ends after yielding a non-nil error, or when the loop breaks.
func (c *Client) Changes(ctx context.Context, sub Subscription) iter.Seq2[*Change, error] {
	return func(yield func(*Change, error) bool) {
		err := c.Subscribe(ctx, sub, func(_ context.Context, ch *Change) error {
			if !yield(ch, nil) {
				return errHandlerStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errHandlerStop) {
			yield(nil, err)
		}
	}
}

// stream runs one connection. deliver gets the start marker (start=true)
// and then each change.
func (c *Client) stream(ctx context.Context, sub Subscription, from string, deliver func(*Change, bool) error) error {
	if c.opts.Transport == WebSocket {
		return c.streamWS(ctx, sub, from, deliver)
	}
	return c.streamSSE(ctx, sub, from, deliver)
}

// query returns the subscription as query parameters.
func (sub Subscription) query() url.Values {
	q := url.Values{"source": {sub.Source}}
	if len(sub.Tables) > 0 {
		q.Set("tables", strings.Join(sub.Tables, ","))
	}
	if len(sub.Ops) > 0 {
		q.Set("ops", strings.Join(sub.Ops, ","))
	}
	if len(sub.Columns) > 0 {
		q.Set("columns", strings.Join(sub.Columns, ","))
	}
	if sub.Where != "" {
		q.Set("where", sub.Where)
	}
	if sub.Transactions {
		q.Set("transactions", "true")
	}
	if sub.Debounce > 0 {
		q.Set("debounce", sub.Debounce.String())
	}
	return q
}

// httpError reads a gateway error response.
func httpError(resp *http.Response) error {
	var body struct {
		Error *Error `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == nil {
		return &Error{Status: resp.StatusCode, Code: "http", Message: resp.Status}
	}
	body.Error.Status = resp.StatusCode
	return body.Error
}
