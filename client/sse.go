package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// streamSSE reads one Server-Sent Events stream.
func (c *Client) streamSSE(ctx context.Context, sub Subscription, from string, deliver func(*Change, bool) error) error {
	q := sub.query()
	u := c.base.JoinPath("/v1/changes")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if from != "" {
		req.Header.Set("Last-Event-ID", from)
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		return &transportError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return httpError(resp)
	}

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var typ, data string
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				typ = value
			case "data":
				data = value
			}
			continue
		}
		switch typ {
		case "change", "commit", "subscribed":
			var ch Change
			if err := json.Unmarshal([]byte(data), &ch); err != nil {
				return &transportError{fmt.Errorf("sse: malformed %s event: %w", typ, err)}
			}
			if err := deliver(&ch, typ == "subscribed"); err != nil {
				return err
			}
		case "error":
			var ge Error
			if err := json.Unmarshal([]byte(data), &ge); err != nil {
				return &transportError{fmt.Errorf("sse: malformed error event: %w", err)}
			}
			return &ge
		}
		typ, data = "", ""
	}
	if err := sc.Err(); err != nil {
		return &transportError{err}
	}
	return &transportError{fmt.Errorf("sse: stream ended")}
}
