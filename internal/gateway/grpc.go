package gateway

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pgtidev1 "github.com/pgtide/pgtide/proto/pgtide/v1"
)

// grpcErrorDomain is the domain of the gateway's google.rpc.ErrorInfo.
const grpcErrorDomain = "pgtide.gateway"

// grpcService implements pgtidev1.GatewayServer.
type grpcService struct {
	pgtidev1.UnimplementedGatewayServer
	s *Server
}

// identify authenticates the "authorization" metadata of ctx.
func (g *grpcService) identify(ctx context.Context) (*identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	tok := ""
	if v := md.Get("authorization"); len(v) > 0 {
		scheme, t, _ := cutSpace(v[0])
		if scheme != "Bearer" && scheme != "bearer" {
			return nil, grpcError(errorf(CodeUnauthorized, "authorization scheme %q is not Bearer", scheme))
		}
		tok = t
	}
	id, err := g.s.auth.authenticate(tok)
	if err != nil {
		return nil, grpcError(err)
	}
	return id, nil
}

func cutSpace(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func fromProto(p *pgtidev1.Subscription, from string) Subscription {
	if p == nil {
		return Subscription{From: from}
	}
	return Subscription{
		Source: p.Source, Tables: p.Tables, Ops: p.Ops, Columns: p.Columns,
		Where: p.Where, Transactions: p.Transactions, Debounce: p.Debounce, From: from,
	}
}

// Subscribe implements pgtidev1.GatewayServer.
func (g *grpcService) Subscribe(req *pgtidev1.SubscribeRequest, stream pgtidev1.Gateway_SubscribeServer) error {
	const transport = "grpc"
	s := g.s
	s.metrics.connections.WithLabelValues(transport).Inc()
	defer s.metrics.connections.WithLabelValues(transport).Dec()
	id, err := g.identify(stream.Context())
	if err != nil {
		return err
	}
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	rd, start, err := s.subscribe(ctx, id, fromProto(req.Subscription, req.From))
	if err != nil {
		return grpcError(err)
	}
	s.metrics.subscriptions.WithLabelValues(transport).Inc()
	defer s.metrics.subscriptions.WithLabelValues(transport).Dec()

	box := newOutbox(s.cfg.SendBuffer, s.cfg.SlowConsumerTimeout)
	box.setCursor("", start)
	rd.emit = func(ctx context.Context, evs []*event) error {
		return box.push(ctx, frame{evs: evs})
	}
	done := make(chan error, 1)
	go func() { done <- rd.run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	for {
		select {
		case f := <-box.ch:
			resp := &pgtidev1.SubscribeResponse{Changes: toProto(f.evs)}
			if err := stream.Send(resp); err != nil {
				return err
			}
			box.wrote("", f.evs)
			s.delivered(transport, f.evs)
		case err := <-done:
			if ctx.Err() != nil {
				if s.ctx.Err() != nil {
					return status.Error(codes.Unavailable, "gateway shutting down; resume from your cursor")
				}
				return ctx.Err()
			}
			ge := asError(err)
			if ge.Cursor == "" {
				ge.Cursor = box.cursor("")
			}
			s.metrics.errors.WithLabelValues(ge.Code).Inc()
			return grpcError(ge)
		}
	}
}

func toProto(evs []*event) []*pgtidev1.Change {
	out := make([]*pgtidev1.Change, len(evs))
	for i, ev := range evs {
		out[i] = &pgtidev1.Change{
			Cursor:     ev.cursor,
			Op:         ev.op,
			Schema:     ev.schema,
			Table:      ev.table,
			Lsn:        ev.id.LSN.String(),
			Xid:        ev.xid,
			CommitTime: ev.commitTime.UTC().Format(time.RFC3339Nano),
			Last:       ev.last,
			Json:       ev.json,
			AckId:      ev.ackID,
		}
	}
	return out
}

// Consume implements pgtidev1.GatewayServer.
func (g *grpcService) Consume(req *pgtidev1.ConsumeRequest, stream pgtidev1.Gateway_ConsumeServer) error {
	const transport = "grpc_group"
	s := g.s
	s.metrics.connections.WithLabelValues(transport).Inc()
	defer s.metrics.connections.WithLabelValues(transport).Dec()
	id, err := g.identify(stream.Context())
	if err != nil {
		return err
	}
	ctx, cancel := s.streamContext(stream.Context())
	defer cancel()
	m, err := s.joinGroup(ctx, id, req.Group, fromProto(req.Subscription, req.From))
	if err != nil {
		return grpcError(err)
	}
	max := int(req.MaxBatch)
	if max <= 0 {
		max = defaultGroupMax
	}
	max = min(max, maxGroupBatch)
	for {
		evs, err := m.fetch(ctx, max, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return grpcError(err)
		}
		if len(evs) == 0 {
			continue
		}
		if err := stream.Send(&pgtidev1.ConsumeResponse{Changes: toProto(evs)}); err != nil {
			return err
		}
		s.delivered(transport, evs)
	}
}

// Ack implements pgtidev1.GatewayServer.
func (g *grpcService) Ack(ctx context.Context, req *pgtidev1.AckRequest) (*pgtidev1.AckResponse, error) {
	id, err := g.identify(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.s.ack(ctx, id, req.Group, req.AckIds, req.Nack); err != nil {
		return nil, grpcError(err)
	}
	return &pgtidev1.AckResponse{}, nil
}

// grpcError converts err to a gRPC status with a google.rpc.ErrorInfo
// detail: reason is the gateway's error code, metadata["cursor"] the
// cursor to resume from, when there is one.
func grpcError(err error) error {
	if _, ok := status.FromError(err); ok && !isGatewayError(err) {
		return err
	}
	ge := asError(err)
	code := codes.Internal
	switch ge.Code {
	case CodeBadRequest, CodeInvalidCursor, CodeInvalidOption, CodeInvalidPredicate:
		code = codes.InvalidArgument
	case CodeUnauthorized:
		code = codes.Unauthenticated
	case CodeForbidden:
		code = codes.PermissionDenied
	case CodeUnknownSource, CodeUnknownTable:
		code = codes.NotFound
	case CodeCursorExpired:
		code = codes.OutOfRange
	case CodeSlowConsumer:
		code = codes.ResourceExhausted
	case CodeUnavailable:
		code = codes.Unavailable
	}
	st := status.New(code, ge.Message)
	info := &errdetails.ErrorInfo{Reason: ge.Code, Domain: grpcErrorDomain}
	if ge.Cursor != "" {
		info.Metadata = map[string]string{"cursor": ge.Cursor}
	}
	if d, err := st.WithDetails(info); err == nil {
		st = d
	}
	return st.Err()
}

func isGatewayError(err error) bool {
	var ge *Error
	return errors.As(err, &ge)
}
