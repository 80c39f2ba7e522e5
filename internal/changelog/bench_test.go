package changelog

import (
	"testing"
)

// BenchmarkPublish measures publishes of 200-byte messages to an embedded
// file-backed log through one Publisher with a 4096-message window,
// including waiting for every acknowledgement.
func BenchmarkPublish(b *testing.B) {
	l := openTestLog(b, Config{})
	ensureTestStream(b, l, "bench")
	ctx := b.Context()

	p, err := l.NewPublisher(ctx, "bench", 4096)
	if err != nil {
		b.Fatalf("NewPublisher: %v", err)
	}
	defer p.Close()
	go func() {
		for range p.Acked() {
		}
	}()

	subj := Subject("bench", "public", "orders")
	data := make([]byte, 200)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()

	for i := range b.N {
		if err := p.Publish(ctx, subj, nil, data, uint64(i)); err != nil {
			b.Fatalf("Publish #%d: %v", i, err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatalf("Flush: %v", err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
