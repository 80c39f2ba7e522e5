package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// TestTransports runs one body on every transport: a client receives
// exactly the committed changes in order, including across a gateway
// restart mid-stream and mid-message, resuming from its last cursor; then
// a bad cursor and an unknown table get precise errors.
func TestTransports(t *testing.T) {
	e := newTestEnv(t)
	e.startGateway(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			testDelivery(t, e, tr)
			testSubscribeErrors(t, e, tr)
		})
	}
}

func testDelivery(t *testing.T, e *testEnv, tr transport) {
	table := "t_" + tr.name
	e.exec(t, fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, v text);
		INSERT INTO %[1]s VALUES (0, 'zero')`, table))
	e.waitTable(t, table)

	sub := Subscription{Source: testSource, Tables: []string{"public." + table}, From: "beginning"}
	r := mustOpen(t, tr, e, sub, "")

	// 1 + 20 + 5×4 records; BatchRows is 7, so the big transaction spans
	// several log messages and the restart below falls inside one.
	e.exec(t, fmt.Sprintf(`INSERT INTO %s SELECT g, 'v' || g FROM generate_series(1, 20) g`, table))
	for i := range 5 {
		id := 100 + 2*i
		e.exec(t, fmt.Sprintf(`BEGIN;
			INSERT INTO %[1]s VALUES (%[2]d, 'a'), (%[3]d, 'b');
			UPDATE %[1]s SET v = 'c' WHERE id = %[2]d;
			DELETE FROM %[1]s WHERE id = %[3]d;
			COMMIT`, table, id, id+1))
	}

	var got []testChange
	for len(got) < 10 {
		c, err := r.next(t)
		if err != nil {
			t.Fatalf("%s: next: %v", tr.name, err)
		}
		got = append(got, c)
	}
	e.restartGateway(t)
	r.close()

	// Changes committed while the client is away.
	e.exec(t, fmt.Sprintf(`INSERT INTO %s SELECT g, 'w' FROM generate_series(200, 209) g`, table))
	want := e.logIDs(t, table, 51)

	sub.From = got[len(got)-1].Cursor
	r = mustOpen(t, tr, e, sub, "")
	defer r.close()
	for len(got) < len(want) {
		c, err := r.next(t)
		if err != nil {
			t.Fatalf("%s: next after resume: %v", tr.name, err)
		}
		got = append(got, c)
	}

	ids := make([]string, len(got))
	for i, c := range got {
		ids[i] = c.id()
		if c.Table != table || c.Schema != "public" || c.Cursor == "" {
			t.Fatalf("change %d: %+v", i, c)
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("%s: delivered IDs\n%v\nwant (the log)\n%v", tr.name, ids, want)
	}

	// Spot-check the JSON of updates and deletes.
	for _, c := range got {
		var key struct{ ID int }
		json.Unmarshal(c.Key, &key)
		switch c.Op {
		case "update":
			want := fmt.Sprintf(`{"id":%d,"v":"c"}`, key.ID)
			if key.ID < 100 || key.ID%2 != 0 || string(c.New) != want {
				t.Errorf("update: key %s new %s, want new %s", c.Key, c.New, want)
			}
		case "delete":
			if key.ID < 100 || key.ID%2 != 1 || c.New != nil {
				t.Errorf("delete: key %s new %s", c.Key, c.New)
			}
		}
	}
}

func testSubscribeErrors(t *testing.T, e *testEnv, tr transport) {
	table := "public.t_" + tr.name
	cases := []struct {
		name string
		sub  Subscription
		code string
	}{
		{"garbled_cursor", Subscription{Source: testSource, Tables: []string{table}, From: "AQEBAgMEBQYH"}, CodeInvalidCursor},
		{"not_base64", Subscription{Source: testSource, Tables: []string{table}, From: "!!"}, CodeInvalidCursor},
		{"foreign_cursor", Subscription{Source: testSource, Tables: []string{table},
			From: Cursor{Seq: 1, End: true}.Encode("other")}, CodeInvalidCursor},
		{"future_cursor", Subscription{Source: testSource, Tables: []string{table},
			From: Cursor{Seq: 1 << 40, End: true}.Encode(testSource)}, CodeInvalidCursor},
		{"unknown_table", Subscription{Source: testSource, Tables: []string{"public.nope"}}, CodeUnknownTable},
		{"unknown_source", Subscription{Source: "nosuch"}, CodeUnknownSource},
		{"bad_predicate", Subscription{Source: testSource, Tables: []string{table}, Where: "new.id >"}, CodeInvalidPredicate},
	}
	for _, tc := range cases {
		r, err := tr.open(t, e, tc.sub, "")
		if err == nil {
			// SSE and gRPC report after the stream opens.
			_, err = r.next(t)
			r.close()
		}
		if got := errorCode(err); got != tc.code {
			t.Errorf("%s %s: error %s, want code %s", tr.name, tc.name, describe(err), tc.code)
		}
	}
}

// errorCode extracts the gateway error code from any transport's error.
func errorCode(err error) string {
	var ge *Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	if st, ok := status.FromError(err); ok {
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok {
				return info.Reason
			}
		}
	}
	if err != nil && strings.Contains(err.Error(), "status") {
		return err.Error()
	}
	return ""
}
