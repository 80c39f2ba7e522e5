package capture

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// Online backfills follow the watermark method of Netflix's DBLog. For
// each chunk the backfill runner writes a low watermark into the WAL,
// reads the chunk, and writes a high watermark. The stream sees the
// watermarks in commit order. Between them it notes every key of the
// table that changed; at the high watermark it emits the chunk's rows as
// read records, minus those keys. A dropped row's newer state was streamed
// inside the window, and every later change follows the read record, so a
// reader applying the log in order never sees a row older than its latest
// change.

// watermarkPrefix is the logical message prefix of backfill watermarks.
const watermarkPrefix = "pgtide.watermark"

// watermarkMsg is the content of a watermark message.
type watermarkMsg struct {
	Source string `json:"source"`
	Window string `json:"window"`
	Kind   string `json:"kind"` // "low" or "high"
}

// window is one backfill chunk between its watermarks.
type window struct {
	id     string
	rel    *relation
	keyIdx []int // positions of the chunk key in rel.columns

	// Fields below are guarded by windows.mu.
	low     bool
	invalid bool
	changed map[string]struct{}
	rows    []change.Row
	// emitted is set at the high watermark; done closes at its commit.
	emitted int
	done    chan struct{}
}

// windows are the open backfill chunks of a session. Methods are safe
// for concurrent use by the runner and the stream, and on a nil receiver.
type windows struct {
	mu   sync.Mutex // guards all windows' mutable fields and the maps
	byID map[string]*window
	// closing are windows whose high watermark is in the current
	// transaction; their done channels close at its commit.
	closing []*window
}

func newWindows() *windows { return &windows{byID: map[string]*window{}} }

func (ws *windows) add(w *window) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.done = make(chan struct{})
	ws.byID[w.id] = w
}

func (ws *windows) remove(id string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.byID, id)
}

func (ws *windows) setRows(w *window, rows []change.Row) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.rows = rows
}

// forTableLocked returns the open windows of a table.
func (ws *windows) forTableLocked(schema, table string) []*window {
	var out []*window
	for _, w := range ws.byID {
		if w.low && w.rel.schema == schema && w.rel.table == table {
			out = append(out, w)
		}
	}
	return out
}

// noteChange records the keys a streamed change touches.
func (ws *windows) noteChange(rel *relation, row *change.Row) {
	if ws == nil {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.forTableLocked(rel.schema, rel.table) {
		for _, vals := range [][]*change.Value{row.New, row.Old} {
			if vals != nil {
				w.changed[eventKey(w, rel, vals)] = struct{}{}
			}
		}
	}
}

// invalidate drops the open windows of a table whose rows can no longer
// be trusted: it was truncated, or its columns changed.
func (ws *windows) invalidate(schema, table string) {
	if ws == nil {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.forTableLocked(schema, table) {
		w.invalid = true
	}
}

// committed closes the windows whose high watermark just committed.
func (ws *windows) committed() {
	if ws == nil {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.closing {
		close(w.done)
		delete(ws.byID, w.id)
	}
	ws.closing = nil
}

// keyString joins key values unambiguously.
func keyString(vals []*change.Value, idx []int) string {
	var b strings.Builder
	for _, i := range idx {
		v := vals[i]
		if v == nil {
			b.WriteString("n;")
			continue
		}
		b.WriteString(strconv.Itoa(len(v.Data)))
		b.WriteByte(':')
		b.Write(v.Data)
	}
	return b.String()
}

// eventKey is the key of a streamed row in the window's terms: the
// window's key columns looked up by name in the stream's relation.
func eventKey(w *window, rel *relation, vals []*change.Value) string {
	idx := make([]int, len(w.keyIdx))
	for i, k := range w.keyIdx {
		idx[i] = rel.column(w.rel.columns[k].Name)
		if idx[i] < 0 || idx[i] >= len(vals) {
			return "?"
		}
	}
	return keyString(vals, idx)
}

// watermark handles a logical message: the stream side of a backfill.
func (s *session) watermark(ctx context.Context, m logicalMsg) error {
	if m.Prefix != watermarkPrefix || !m.Transactional || s.windows == nil {
		return nil
	}
	var wm watermarkMsg
	if json.Unmarshal(m.Content, &wm) != nil || wm.Source != s.opts.Source {
		return nil
	}
	ws := s.windows
	ws.mu.Lock()
	w := ws.byID[wm.Window]
	if w == nil {
		// A watermark of an earlier session, replayed after a restart.
		ws.mu.Unlock()
		return nil
	}
	if wm.Kind == "low" {
		w.low, w.changed = true, map[string]struct{}{}
		ws.mu.Unlock()
		return nil
	}
	rows := w.rows
	if !w.low || w.invalid {
		rows = nil
		w.invalid = true
	}
	var keep []change.Row
	for _, r := range rows {
		if _, hit := w.changed[keyString(r.New, w.keyIdx)]; !hit {
			keep = append(keep, r)
		}
	}
	w.emitted = len(keep)
	ws.closing = append(ws.closing, w)
	ws.mu.Unlock()
	for _, r := range keep {
		if !s.nextID() {
			continue
		}
		if err := s.add(ctx, w.rel, change.OpRead, r, rowBytes(r)); err != nil {
			return err
		}
	}
	return nil
}

// windowRelation is the relation backfill records of a table carry.
func windowRelation(source string, tp *tablePlan, cols []change.Column) *relation {
	return &relation{schema: tp.Schema, table: tp.Table, columns: cols,
		subject: changelog.Subject(source, tp.Schema, tp.Table)}
}
