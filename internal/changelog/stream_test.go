package changelog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestEnsureStreamIdempotent(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()

	r := Retention{MaxAge: time.Hour, MaxBytes: 1 << 30}
	s1, err := l.EnsureStream(ctx, "shop-eu", r)
	if err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	s2, err := l.EnsureStream(ctx, "shop-eu", r)
	if err != nil {
		t.Fatalf("second EnsureStream: %v", err)
	}

	c1, c2 := s1.CachedInfo().Config, s2.CachedInfo().Config
	if c2.Name != "PGTIDE_SHOP_EU" || len(c2.Subjects) != 1 || c2.Subjects[0] != "pgtide.shop-eu.>" {
		t.Errorf("stream = %s %q, want PGTIDE_SHOP_EU [pgtide.shop-eu.>]", c2.Name, c2.Subjects)
	}
	if c1.MaxAge != time.Hour || c2.MaxAge != time.Hour || c2.MaxBytes != 1<<30 {
		t.Errorf("retention = %s/%d, want 1h/%d", c2.MaxAge, c2.MaxBytes, 1<<30)
	}
	if c2.Storage != jetstream.FileStorage || c2.Discard != jetstream.DiscardOld ||
		!c2.AllowDirect || c2.Duplicates != time.Minute || c2.Replicas != 1 {
		t.Errorf("stream config = %+v, want file storage, discard old, direct get, "+
			"1m duplicates, 1 replica", c2)
	}
	if !s1.CachedInfo().Created.Equal(s2.CachedInfo().Created) {
		t.Errorf("second EnsureStream recreated the stream")
	}

	// A short age limit also shortens the duplicate window.
	s4, err := l.EnsureStream(ctx, "short", Retention{MaxAge: 10 * time.Second})
	if err != nil {
		t.Fatalf("EnsureStream with MaxAge 10s: %v", err)
	}
	if c := s4.CachedInfo().Config; c.Duplicates != 10*time.Second {
		t.Errorf("MaxAge 10s: duplicate window = %s, want 10s", c.Duplicates)
	}

	// Changing retention updates the stream in place.
	s3, err := l.EnsureStream(ctx, "shop-eu", Retention{})
	if err != nil {
		t.Fatalf("EnsureStream with new retention: %v", err)
	}
	if c := s3.CachedInfo().Config; c.MaxAge != 0 || c.MaxBytes != -1 {
		t.Errorf("after update: retention = %s/%d, want 0/-1", c.MaxAge, c.MaxBytes)
	}
}

func TestEnsureStreamConflict(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()

	// A stream of the same name for other subjects, as "Shop" would make
	// for source "shop".
	_, err := l.JetStream().CreateStream(ctx, jetstream.StreamConfig{
		Name:     StreamName("shop"),
		Subjects: []string{"other.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("CreateStream: %v", err)
	}

	_, err = l.EnsureStream(ctx, "shop", Retention{})
	if err == nil {
		t.Fatalf("EnsureStream over a stream with other subjects succeeded")
	}
	for _, want := range []string{"PGTIDE_SHOP", "other.>", "pgtide.shop.>"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("EnsureStream conflict error %q does not mention %q", err, want)
		}
	}

	if _, err := l.EnsureStream(ctx, "bad.name", Retention{}); err == nil {
		t.Errorf("EnsureStream(bad.name) succeeded, want invalid source error")
	}
	if _, err := l.EnsureStream(ctx, "neg", Retention{MaxAge: -time.Second}); err == nil {
		t.Errorf("EnsureStream with negative MaxAge succeeded")
	}
}

func TestLastAndInfo(t *testing.T) {
	l := openTestLog(t, Config{})
	ctx := t.Context()

	if _, err := l.Last(ctx, "missing"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Last(missing) error = %v, want ErrStreamNotFound", err)
	}
	if _, err := l.Info(ctx, "missing"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Info(missing) error = %v, want ErrStreamNotFound", err)
	}

	ensureTestStream(t, l, "src")
	if m, err := l.Last(ctx, "src"); m != nil || err != nil {
		t.Errorf("Last(empty) = %+v, %v; want nil, nil", m, err)
	}

	publishAll(t, l, "src", 0, []testMsg{
		{Subject("src", "public", "a"), "first"},
		{Subject("src", "public", "b"), "second"},
	})
	m, err := l.Last(ctx, "src")
	if err != nil || m == nil || m.Seq != 2 || string(m.Data) != "second" || m.Time.IsZero() {
		t.Errorf("Last(src) = %+v, %v; want seq 2 \"second\" with a time", m, err)
	}

	st, err := l.Info(ctx, "src")
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if st.FirstSeq != 1 || st.LastSeq != 2 || st.Msgs != 2 || st.Bytes == 0 {
		t.Errorf("Info = %+v, want first 1, last 2, 2 msgs, some bytes", st)
	}
}
