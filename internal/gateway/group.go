package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pgtide/pgtide/internal/changelog"
)

// Consumer groups are durable JetStream consumers named after the group:
// the log keeps each group's position and unacknowledged messages, so any
// gateway process serves any member, and a restart loses nothing. A
// delivery is one log message's changes, which share one ack id; a
// delivery not acknowledged within AckWait, or rejected with a nack, is
// delivered again (at least once).

const (
	maxGroupLen     = 64
	groupPrefix     = "pgtide_gw_"
	maxGroupBatch   = 1000
	defaultGroupMax = 100
)

// validGroup checks a group name: 1 to 64 ASCII letters, digits, '_' or
// '-'.
func validGroup(g string) error {
	if g == "" || len(g) > maxGroupLen {
		return errorf(CodeInvalidOption, "group name must be 1 to %d characters", maxGroupLen)
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return errorf(CodeInvalidOption, "group name %q may hold only ASCII letters, digits, '_' and '-'", g)
		}
	}
	return nil
}

// groupMember is one member's view of a group.
type groupMember struct {
	s    *Server
	cons jetstream.Consumer
	rd   *reader
}

// joinGroup returns the group's consumer, creating it on first use.
func (s *Server) joinGroup(ctx context.Context, id *identity, group string, sub Subscription) (*groupMember, error) {
	if err := validGroup(group); err != nil {
		return nil, err
	}
	if err := id.allowGroup(group); err != nil {
		return nil, err
	}
	p, err := compile(sub, id)
	if err != nil {
		return nil, err
	}
	// Markers and debouncing depend on delivery order, which
	// redeliveries break.
	p.tx, p.debounce = false, 0
	h, err := s.hubFor(ctx, p.source)
	if err != nil {
		return nil, err
	}
	if err := s.checkTables(ctx, h, p); err != nil {
		return nil, err
	}

	st, err := s.log.JetStream().Stream(ctx, changelog.StreamName(p.source))
	if err != nil {
		return nil, s.logError(p.source, err)
	}
	name := groupPrefix + group
	cons, err := st.Consumer(ctx, name)
	switch {
	case err == nil:
		have := cons.CachedInfo().Config.FilterSubjects
		if f := cons.CachedInfo().Config.FilterSubject; f != "" {
			have = append(have, f)
		}
		if !sameSet(have, p.filters) {
			return nil, errorf(CodeInvalidOption,
				"group %q exists with tables %v; every member must subscribe to the same tables", group, have)
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cfg := jetstream.ConsumerConfig{
			Durable:        name,
			Description:    "pgtide gateway consumer group " + group,
			FilterSubjects: p.filters,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        s.cfg.AckWait,
			MaxAckPending:  10000,
			DeliverPolicy:  jetstream.DeliverNewPolicy,
		}
		switch p.from {
		case "beginning":
			cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		case "", "now":
		default:
			return nil, errorf(CodeInvalidOption, "a group starts from beginning or now, not a cursor")
		}
		cons, err = st.CreateOrUpdateConsumer(ctx, cfg)
		if err != nil {
			return nil, s.logError(p.source, err)
		}
	default:
		return nil, s.logError(p.source, err)
	}
	return &groupMember{s: s, cons: cons, rd: &reader{srv: s, hub: h, p: p}}, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// fetch returns up to max changes, waiting up to wait for the first.
// Messages holding no selected change are acknowledged at once.
func (m *groupMember) fetch(ctx context.Context, max int, wait time.Duration) ([]*event, error) {
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	batch, err := m.cons.Fetch(max, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, m.s.logError(m.rd.p.source, err)
	}
	var out []*event
	for jm := range batch.Messages() {
		md, err := jm.Metadata()
		if err != nil {
			continue
		}
		var evs []*event
		m.rd.emit = func(_ context.Context, e []*event) error {
			evs = e
			return nil
		}
		e := &entry{seq: md.Sequence.Stream, subject: jm.Subject(), data: jm.Data(), time: md.Timestamp}
		if err := m.rd.message(ctx, e); err != nil {
			// A message that does not decode will not decode
			// next time either: end its redelivery.
			jm.Term()
			continue
		}
		if len(evs) == 0 {
			jm.Ack()
			continue
		}
		ack := base64.RawURLEncoding.EncodeToString([]byte(jm.Reply()))
		for _, ev := range evs {
			out = append(out, withAckID(ev, ack))
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) &&
		!errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return out, m.s.logError(m.rd.p.source, err)
	}
	return out, nil
}

// withAckID returns a copy of ev whose JSON starts with its ack id.
func withAckID(ev *event, ack string) *event {
	c := *ev
	c.ackID = ack
	b := make([]byte, 0, len(ev.json)+len(ack)+12)
	b = append(b, `{"ack_id":`...)
	b = appendString(b, ack)
	b = append(b, ',')
	c.json = append(b, ev.json[1:]...)
	return &c
}

// ack acknowledges (or with nack rejects) deliveries of group.
func (s *Server) ack(ctx context.Context, id *identity, group string, ackIDs []string, nack bool) error {
	if err := validGroup(group); err != nil {
		return err
	}
	if err := id.allowGroup(group); err != nil {
		return err
	}
	if len(ackIDs) > maxGroupBatch*256 {
		return errorf(CodeBadRequest, "too many ack ids")
	}
	body := []byte("+ACK")
	if nack {
		body = []byte("-NAK")
	}
	nc := s.log.Conn()
	for _, a := range ackIDs {
		subj, err := base64.RawURLEncoding.DecodeString(a)
		if err != nil || !validAckSubject(string(subj), groupPrefix+group) {
			return errorf(CodeBadRequest, "ack id %q is not one of group %q", a, group)
		}
		if err := nc.Publish(string(subj), body); err != nil {
			return s.logError("", err)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		return s.logError("", err)
	}
	return nil
}

// validAckSubject reports whether subj is a JetStream ack subject of the
// durable consumer: $JS.ACK.[<domain>.<account>.]<stream>.<consumer>.….
func validAckSubject(subj, durable string) bool {
	t := strings.Split(subj, ".")
	if len(t) < 9 || t[0] != "$JS" || t[1] != "ACK" {
		return false
	}
	switch len(t) {
	case 9:
		return t[3] == durable
	default:
		return len(t) >= 11 && t[5] == durable
	}
}

// handleGroupFetch serves GET /v1/groups/{group}/changes: a long poll of
// a consumer group. The response is {"changes":[…]} where every change
// carries an ack_id for POST /v1/groups/{group}/ack.
func (s *Server) handleGroupFetch(w http.ResponseWriter, r *http.Request) {
	s.metrics.connections.WithLabelValues("group").Inc()
	defer s.metrics.connections.WithLabelValues("group").Dec()
	req, err := s.parsePoll(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	ctx, cancel := s.streamContext(r.Context())
	defer cancel()
	m, err := s.joinGroup(ctx, req.id, r.PathValue("group"), req.sub)
	if err != nil {
		s.writeError(w, err)
		return
	}
	evs, err := m.fetch(ctx, req.limit, req.timeout)
	if err != nil && len(evs) == 0 {
		s.writeError(w, err)
		return
	}
	s.delivered("group", evs)
	b := []byte(`{"changes":[`)
	for i, ev := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, ev.json...)
	}
	b = append(b, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// ackRequest is the body of POST /v1/groups/{group}/ack.
type ackRequest struct {
	AckIDs []string `json:"ack_ids"`
	Nack   bool     `json:"nack"`
}

// handleGroupAck serves POST /v1/groups/{group}/ack with a body
// {"ack_ids":[…],"nack":false}; it answers 204.
func (s *Server) handleGroupAck(w http.ResponseWriter, r *http.Request) {
	id, err := s.identify(r)
	if err != nil {
		s.writeError(w, err)
		return
	}
	var req ackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.writeError(w, errorf(CodeBadRequest, "malformed ack body: %v", err))
		return
	}
	if err := s.ack(r.Context(), id, r.PathValue("group"), req.AckIDs, req.Nack); err != nil {
		s.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
