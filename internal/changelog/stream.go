package changelog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// duplicateWindow is how long the stream remembers Nats-Msg-Id headers,
// unless the age limit is shorter.
const duplicateWindow = time.Minute

// Retention bounds how much of a log is kept; the oldest messages go
// first. Zero fields mean no limit.
type Retention struct {
	MaxAge   time.Duration // drop messages older than this
	MaxBytes int64         // drop the oldest messages beyond this size
}

// StreamState is a snapshot of a log's extent.
type StreamState struct {
	FirstSeq  uint64    // sequence of the oldest message kept
	LastSeq   uint64    // sequence of the newest message ever stored
	Msgs      uint64    // number of messages kept
	Bytes     uint64    // size of the messages kept
	FirstTime time.Time // store time of the oldest message kept
	LastTime  time.Time // store time of the newest message
}

// streamConfig returns the configuration EnsureStream wants for source.
func (l *Log) streamConfig(source string, r Retention) jetstream.StreamConfig {
	maxBytes := r.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	// The server refuses a duplicate window longer than the age limit.
	dupes := duplicateWindow
	if r.MaxAge > 0 && r.MaxAge < dupes {
		dupes = r.MaxAge
	}
	return jetstream.StreamConfig{
		Name:        StreamName(source),
		Description: "pgtide change log of source " + source,
		Subjects:    []string{SubjectPrefix(source) + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      max(r.MaxAge, 0),
		MaxBytes:    maxBytes,
		MaxMsgs:     -1,
		Duplicates:  dupes,
		AllowDirect: true,
		Replicas:    l.replicas,
	}
}

// EnsureStream creates the stream of source or brings an existing one to
// the wanted retention and replica count. It fails, naming the conflict,
// when a stream of that name exists with other subjects or storage, or
// when another stream already claims the subjects.
func (l *Log) EnsureStream(
	ctx context.Context, source string, r Retention,
) (jetstream.Stream, error) {
	if err := ValidateSource(source); err != nil {
		return nil, err
	}
	if r.MaxAge < 0 || r.MaxBytes < 0 {
		return nil, fmt.Errorf("changelog: source %s: negative retention %+v", source, r)
	}
	want := l.streamConfig(source, r)

	s, err := l.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = l.js.CreateStream(ctx, want)
		if err != nil {
			return nil, fmt.Errorf("changelog: create stream %s: %w", want.Name, err)
		}
		l.logger.Info("stream created", "stream", want.Name, "subjects", want.Subjects)
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("changelog: look up stream %s: %w", want.Name, err)
	}

	have := s.CachedInfo().Config
	if !slices.Equal(have.Subjects, want.Subjects) {
		return nil, fmt.Errorf("changelog: stream %s exists with subjects %q, want %q "+
			"(is another source named like %q?)", want.Name, have.Subjects, want.Subjects, source)
	}
	if have.Storage != want.Storage {
		return nil, fmt.Errorf("changelog: stream %s exists with %s storage, want %s",
			want.Name, have.Storage, want.Storage)
	}
	if have.Retention != want.Retention {
		return nil, fmt.Errorf("changelog: stream %s exists with %s retention, want %s",
			want.Name, have.Retention, want.Retention)
	}
	if sameTunables(have, want) {
		return s, nil
	}

	s, err = l.js.UpdateStream(ctx, want)
	if err != nil {
		return nil, fmt.Errorf("changelog: update stream %s: %w", want.Name, err)
	}
	l.logger.Info("stream updated",
		"stream", want.Name,
		"max_age", want.MaxAge,
		"max_bytes", want.MaxBytes,
		"replicas", want.Replicas,
	)
	return s, nil
}

// sameTunables reports whether the settings EnsureStream may change on an
// existing stream already have their wanted values.
func sameTunables(have, want jetstream.StreamConfig) bool {
	return have.MaxAge == want.MaxAge &&
		have.MaxBytes == want.MaxBytes &&
		have.MaxMsgs == want.MaxMsgs &&
		have.Discard == want.Discard &&
		have.Duplicates == want.Duplicates &&
		have.AllowDirect == want.AllowDirect &&
		have.Replicas == want.Replicas &&
		have.Description == want.Description
}

// stream looks up the stream of source. A missing stream yields an error
// matching [jetstream.ErrStreamNotFound].
func (l *Log) stream(ctx context.Context, source string) (jetstream.Stream, error) {
	s, err := l.js.Stream(ctx, StreamName(source))
	if err != nil {
		return nil, fmt.Errorf("changelog: stream %s of source %s: %w",
			StreamName(source), source, err)
	}
	return s, nil
}

// Info returns the current extent of the log of source. A missing stream
// yields an error matching [jetstream.ErrStreamNotFound].
func (l *Log) Info(ctx context.Context, source string) (StreamState, error) {
	s, err := l.stream(ctx, source)
	if err != nil {
		return StreamState{}, err
	}
	st := s.CachedInfo().State
	return StreamState{
		FirstSeq:  st.FirstSeq,
		LastSeq:   st.LastSeq,
		Msgs:      st.Msgs,
		Bytes:     st.Bytes,
		FirstTime: st.FirstTime,
		LastTime:  st.LastTime,
	}, nil
}

// Last returns the newest message of the log of source, or nil and no
// error when the log holds no message. A missing stream yields an error
// matching [jetstream.ErrStreamNotFound].
func (l *Log) Last(ctx context.Context, source string) (*Message, error) {
	s, err := l.stream(ctx, source)
	if err != nil {
		return nil, err
	}
	if s.CachedInfo().State.Msgs == 0 {
		return nil, nil
	}

	raw, err := s.GetLastMsgForSubject(ctx, SubjectPrefix(source)+".>")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("changelog: last message of stream %s: %w", StreamName(source), err)
	}
	return &Message{
		Seq:     raw.Sequence,
		Subject: raw.Subject,
		Header:  raw.Header,
		Data:    raw.Data,
		Time:    raw.Time,
	}, nil
}

// IsWrongLastSequence reports whether err says a publish was refused
// because the stream did not end at the expected sequence, which means
// another writer appended to the log or an earlier publish failed.
func IsWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// Message returns the message with sequence seq of the log of source, or
// nil and no error when the log no longer (or never) held it.
func (l *Log) Message(ctx context.Context, source string, seq uint64) (*Message, error) {
	s, err := l.stream(ctx, source)
	if err != nil {
		return nil, err
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("changelog: message %d of stream %s: %w", seq, StreamName(source), err)
	}
	return &Message{
		Seq:     raw.Sequence,
		Subject: raw.Subject,
		Header:  raw.Header,
		Data:    raw.Data,
		Time:    raw.Time,
	}, nil
}
