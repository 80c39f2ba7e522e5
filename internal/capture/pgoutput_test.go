package capture

import (
	"encoding/binary"
	"testing"
	"time"
)

// pgoutput message builders for tests.
func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
func cstr(s string) []byte { return append([]byte(s), 0) }

func textCol(s string) []byte { return cat([]byte{'t'}, be32(uint32(len(s))), []byte(s)) }

func TestDecodeMessages(t *testing.T) {
	begin, err := decodeBegin(cat(be64(0x10), be64(86400*1e6), be32(7)))
	if err != nil || begin.FinalLSN != 0x10 || begin.Xid != 7 ||
		!begin.CommitTime.Equal(time.Date(2000, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("decodeBegin = %+v, %v", begin, err)
	}

	rel, err := decodeRelation(cat(be32(5), cstr("public"), cstr("t"), []byte{'d'}, be16(2),
		[]byte{1}, cstr("id"), be32(23), be32(0xffffffff), []byte{0}, cstr("v"), be32(25), be32(0xffffffff)))
	if err != nil || rel.ID != 5 || len(rel.Columns) != 2 || !rel.Columns[0].Key || rel.Columns[1].Name != "v" ||
		rel.Columns[0].TypMod != -1 {
		t.Errorf("decodeRelation = %+v, %v", rel, err)
	}

	upd, err := decodeUpdate(cat(be32(5), []byte{'K'}, be16(2), textCol("1"), []byte{'n'},
		[]byte{'N'}, be16(2), textCol("2"), []byte{'u'}))
	if err != nil || upd.OldKind != 'K' || string(upd.Old[0].Data) != "1" || upd.Old[1] != nil ||
		string(upd.New[0].Data) != "2" || len(upd.Unchanged) != 1 || upd.Unchanged[0] != 1 {
		t.Errorf("decodeUpdate = %+v, %v", upd, err)
	}

	tr, err := decodeTruncate(cat(be32(2), []byte{3}, be32(5), be32(6)))
	if err != nil || !tr.Cascade || !tr.RestartIdentity || len(tr.RelIDs) != 2 || tr.RelIDs[1] != 6 {
		t.Errorf("decodeTruncate = %+v, %v", tr, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func([]byte) error
		in   []byte
	}{
		{"begin_short", func(b []byte) error { _, err := decodeBegin(b); return err }, be64(1)},
		{"commit_trailing", func(b []byte) error { _, err := decodeCommit(b); return err }, make([]byte, 26)},
		{"relation_no_nul", func(b []byte) error { _, err := decodeRelation(b); return err }, cat(be32(1), []byte("public"))},
		{"relation_many_columns", func(b []byte) error { _, err := decodeRelation(b); return err },
			cat(be32(1), cstr("s"), cstr("t"), []byte{'d'}, be16(60000))},
		{"insert_marker", func(b []byte) error { _, err := decodeInsert(b); return err }, cat(be32(1), []byte{'X'}, be16(0))},
		{"insert_value_len", func(b []byte) error { _, err := decodeInsert(b); return err },
			cat(be32(1), []byte{'N'}, be16(1), []byte{'t'}, be32(100), []byte("ab"))},
		{"insert_kind", func(b []byte) error { _, err := decodeInsert(b); return err }, cat(be32(1), []byte{'N'}, be16(1), []byte{'z'})},
		{"delete_marker", func(b []byte) error { _, err := decodeDelete(b); return err }, cat(be32(1), []byte{'N'}, be16(0))},
		{"truncate_count", func(b []byte) error { _, err := decodeTruncate(b); return err }, cat(be32(3), []byte{0}, be32(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(tt.in); err == nil {
				t.Errorf("decoding %x succeeded, want an error", tt.in)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to every pgoutput decoder: none may
// panic, whatever the server (or a man in the middle) sends.
func FuzzDecode(f *testing.F) {
	f.Add(byte('I'), cat(be32(1), []byte{'N'}, be16(1), textCol("x")))
	f.Add(byte('U'), cat(be32(5), []byte{'O'}, be16(1), textCol("1"), []byte{'N'}, be16(1), []byte{'u'}))
	f.Add(byte('R'), cat(be32(5), cstr("public"), cstr("t"), []byte{'d'}, be16(1), []byte{1}, cstr("id"), be32(23), be32(0)))
	f.Add(byte('T'), cat(be32(1), []byte{1}, be32(5)))
	f.Add(byte('B'), cat(be64(1), be64(2), be32(3)))
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		switch kind % 7 {
		case 0:
			decodeBegin(body)
		case 1:
			decodeCommit(body)
		case 2:
			decodeRelation(body)
		case 3:
			decodeInsert(body)
		case 4:
			decodeUpdate(body)
		case 5:
			decodeDelete(body)
		case 6:
			decodeTruncate(body)
		}
	})
}
