package capture

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pgtide/pgtide/internal/change"
	"github.com/pgtide/pgtide/internal/changelog"
)

// relation is what capture knows about a table from its latest Relation
// message. A new Relation message replaces the whole value, so a batch that
// holds a *relation never sees its columns change.
type relation struct {
	id      uint32
	schema  string
	table   string
	columns []change.Column
	subject string
	// ddlLog marks pgtide.ddl_log, whose inserts become DDL records.
	ddlLog bool
}

// typeKey identifies a column type with its modifier.
type typeKey struct {
	oid    uint32
	typmod int32
}

// typeNamer turns type OIDs into format_type() names, caching them for the
// life of a replication session. Not safe for concurrent use.
type typeNamer struct {
	conn  *pgx.Conn
	cache map[typeKey]string
}

func (n *typeNamer) names(ctx context.Context, cols []relColumn) ([]string, error) {
	out := make([]string, len(cols))
	for i, c := range cols {
		k := typeKey{c.TypeID, c.TypMod}
		name, ok := n.cache[k]
		if !ok {
			err := n.conn.QueryRow(ctx, `SELECT format_type($1::oid, nullif($2::int, -1))`,
				c.TypeID, c.TypMod).Scan(&name)
			if err != nil {
				return nil, fmt.Errorf("resolve type %d of column %q: %w", c.TypeID, c.Name, err)
			}
			n.cache[k] = name
		}
		out[i] = name
	}
	return out, nil
}

// newRelation builds the relation for a decoded Relation message.
func newRelation(ctx context.Context, source string, m *relationMsg, types *typeNamer) (*relation, error) {
	names, err := types.names(ctx, m.Columns)
	if err != nil {
		return nil, fmt.Errorf("relation %s.%s: %w", m.Namespace, m.Name, err)
	}
	cols := make([]change.Column, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = change.Column{Name: c.Name, Type: names[i], OID: c.TypeID, Key: c.Key}
	}
	return &relation{
		id:      m.ID,
		schema:  m.Namespace,
		table:   m.Name,
		columns: cols,
		subject: changelog.Subject(source, m.Namespace, m.Name),
		ddlLog:  m.Namespace == "pgtide" && m.Name == "ddl_log",
	}, nil
}

// column returns the index of the named column, or -1.
func (r *relation) column(name string) int {
	for i, c := range r.columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}
