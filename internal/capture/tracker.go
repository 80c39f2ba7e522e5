package capture

import (
	"sync"
	"time"

	"github.com/pgtide/pgtide/internal/change"
)

// tracker decides how far the slot may be confirmed. The replication loop
// counts what it publishes; the ack loop reports acknowledgements in
// publish order. An LSN becomes confirmable once every message up to it is
// acknowledged and the acknowledgement is older than the confirm delay.
// Safe for concurrent use.
type tracker struct {
	delay time.Duration

	mu sync.Mutex // guards the fields below
	// published and acked count log messages.
	published, acked uint64
	// points are LSNs waiting for their delay, oldest first; at most one
	// point per coalesce window, so the slice stays small.
	points []lsnPoint
	// confirmable is the highest LSN whose delay has passed.
	confirmable change.LSN
}

type lsnPoint struct {
	lsn change.LSN
	at  time.Time
}

// coalesceWindow merges points closer than this; it bounds len(points) to
// delay/coalesceWindow.
const coalesceWindow = 20 * time.Millisecond

func newTracker(start change.LSN, delay time.Duration) *tracker {
	return &tracker{delay: delay, confirmable: start}
}

// willPublish counts a message about to be published.
func (t *tracker) willPublish() {
	t.mu.Lock()
	t.published++
	t.mu.Unlock()
}

// unpublish takes back a count whose publish call failed.
func (t *tracker) unpublish() {
	t.mu.Lock()
	t.published--
	t.mu.Unlock()
}

// ack records an acknowledged message; endLSN is non-zero when the message
// ended a transaction.
func (t *tracker) ack(endLSN change.LSN, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.acked++
	if endLSN != 0 {
		t.addPointLocked(endLSN, now)
	}
}

// idle offers lsn as confirmable when nothing published is unacknowledged:
// a keepalive's WAL end between transactions, or the end of a transaction
// that produced no message.
func (t *tracker) idle(lsn change.LSN, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.published == t.acked {
		t.addPointLocked(lsn, now)
	}
}

// settled reports whether every published message is acknowledged.
func (t *tracker) settled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.published == t.acked
}

func (t *tracker) addPointLocked(lsn change.LSN, now time.Time) {
	n := len(t.points)
	if n > 0 && lsn <= t.points[n-1].lsn {
		return
	}
	if n == 0 && lsn <= t.confirmable {
		return
	}
	if n > 0 && now.Sub(t.points[n-1].at) < coalesceWindow {
		t.points[n-1].lsn = lsn
		return
	}
	t.points = append(t.points, lsnPoint{lsn: lsn, at: now})
}

// confirm returns the highest LSN whose confirm delay has passed by now.
func (t *tracker) confirm(now time.Time) change.LSN {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A coalesced point may hold an LSN acknowledged up to one window
	// after its time, so a non-zero delay waits one window longer.
	wait := t.delay
	if wait > 0 {
		wait += coalesceWindow
	}
	i := 0
	for ; i < len(t.points) && !t.points[i].at.Add(wait).After(now); i++ {
		t.confirmable = t.points[i].lsn
	}
	t.points = append(t.points[:0], t.points[i:]...)
	return t.confirmable
}
