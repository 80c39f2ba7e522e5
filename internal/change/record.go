package change

import "time"

// Op is the kind of change a record describes.
type Op string

// The operations. OpRead marks rows copied by a snapshot rather than
// changed by a transaction.
const (
	OpInsert   Op = "insert"
	OpUpdate   Op = "update"
	OpDelete   Op = "delete"
	OpTruncate Op = "truncate"
	OpDDL      Op = "ddl"
	OpRead     Op = "read"
)

// Valid reports whether o is one of the defined operations.
func (o Op) Valid() bool {
	switch o {
	case OpInsert, OpUpdate, OpDelete, OpTruncate, OpDDL, OpRead:
		return true
	}
	return false
}

// Format says how a value's bytes are encoded.
type Format byte

// The value formats of the PostgreSQL protocol.
const (
	FormatText   Format = 't'
	FormatBinary Format = 'b'
)

// Value is one column value. A nil *Value in a row is SQL NULL.
type Value struct {
	// Format is FormatText or FormatBinary.
	Format Format
	// Data is the value in Format: the type's text output or binary send
	// form, exactly as the source produced it.
	Data []byte
}

// Text returns a text-format value holding s.
func Text(s string) *Value {
	return &Value{Format: FormatText, Data: []byte(s)}
}

// Column describes one column of a table as the source saw it when the
// change was decoded.
type Column struct {
	// Name is the column name.
	Name string `json:"name"`
	// Type is the type as format_type() prints it, e.g. "numeric(10,2)".
	Type string `json:"type"`
	// OID is the type's OID in the source database.
	OID uint32 `json:"oid"`
	// Key is true for columns of the replica identity (usually the
	// primary key).
	Key bool `json:"key,omitempty"`
}

// Record is one change of one row (or one truncated table, or one DDL
// statement), as described in the package documentation.
type Record struct {
	// Source is the configured name of the source database.
	Source string
	// ID is the commit LSN of the transaction and the record's position
	// in it.
	ID ID
	// Xid is the source transaction id.
	Xid uint32
	// CommitTime is when the source transaction committed.
	CommitTime time.Time
	// Schema and Table name the changed table.
	Schema, Table string
	// Op is the operation.
	Op Op
	// Columns describes the values of New and Old, index by index.
	Columns []Column
	// New holds the row after an insert or update (nil entries are NULL).
	// Columns listed in Unchanged hold nil and must not be read as NULL.
	New []*Value
	// Old holds the row before an update or delete: the full old row
	// when the table has REPLICA IDENTITY FULL, otherwise only the key
	// columns (OldKeyOnly is then true and the other entries are nil).
	// It is nil for an update that did not change the key.
	Old []*Value
	// OldKeyOnly reports that Old holds only the replica identity.
	OldKeyOnly bool
	// Unchanged names columns whose TOASTed value the update did not
	// change; the source did not send them.
	Unchanged []string
	// Last is true for the last record of its transaction.
	Last bool
	// Cascade and RestartIdentity are the options of a TRUNCATE.
	Cascade, RestartIdentity bool
	// DDL is set for OpDDL records.
	DDL *DDL
}

// DDL describes a captured DDL statement.
type DDL struct {
	// Tag is the command tag, e.g. "ALTER TABLE".
	Tag string `json:"tag"`
	// Statement is the statement text as the client sent it.
	Statement string `json:"statement"`
	// SearchPath is the search_path in effect when it ran.
	SearchPath string `json:"search_path,omitempty"`
	// User is the role that ran it.
	User string `json:"user,omitempty"`
	// Objects are the identities of the objects it created or altered.
	Objects []string `json:"objects,omitempty"`
}
