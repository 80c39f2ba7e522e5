package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// wsSubscribe is the subscribe message of the gateway's WebSocket
// protocol.
type wsSubscribe struct {
	Type         string   `json:"type"`
	ID           string   `json:"id"`
	Source       string   `json:"source"`
	Tables       []string `json:"tables,omitempty"`
	Ops          []string `json:"ops,omitempty"`
	Columns      []string `json:"columns,omitempty"`
	Where        string   `json:"where,omitempty"`
	Transactions bool     `json:"transactions,omitempty"`
	Debounce     string   `json:"debounce,omitempty"`
	From         string   `json:"from,omitempty"`
}

// wsMessage is a message from the gateway.
type wsMessage struct {
	Type    string    `json:"type"`
	ID      string    `json:"id"`
	Cursor  string    `json:"cursor"`
	Changes []*Change `json:"changes"`
	Error   *Error    `json:"error"`
}

// streamWS runs one WebSocket connection with one subscription.
func (c *Client) streamWS(ctx context.Context, sub Subscription, from string, deliver func(*Change, bool) error) error {
	u := *c.base
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u = *u.JoinPath("/v1/ws")
	h := http.Header{}
	if c.opts.Token != "" {
		h.Set("Authorization", "Bearer "+c.opts.Token)
	}
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: c.opts.HTTPClient, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			return &Error{Status: resp.StatusCode, Code: "http", Message: err.Error()}
		}
		return &transportError{err}
	}
	defer conn.CloseNow()
	conn.SetReadLimit(64 << 20)

	msg := wsSubscribe{
		Type: "subscribe", ID: "1", Source: sub.Source, Tables: sub.Tables, Ops: sub.Ops,
		Columns: sub.Columns, Where: sub.Where, Transactions: sub.Transactions, From: from,
	}
	if sub.Debounce > 0 {
		msg.Debounce = sub.Debounce.String()
	}
	b, _ := json.Marshal(msg)
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		return &transportError{err}
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return &transportError{err}
		}
		var m wsMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return &transportError{fmt.Errorf("websocket: malformed message: %w", err)}
		}
		switch m.Type {
		case "subscribed":
			if err := deliver(&Change{Cursor: m.Cursor}, true); err != nil {
				return err
			}
		case "changes":
			for _, ch := range m.Changes {
				if err := deliver(ch, false); err != nil {
					return err
				}
			}
		case "error":
			if m.Error == nil {
				return &transportError{fmt.Errorf("websocket: error message without error")}
			}
			return m.Error
		}
	}
}
