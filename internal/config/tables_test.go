package config

import "testing"

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"orders", "orders", true},
		{"orders", "Orders", false},
		{"orders", "orders2", false},
		{"*", "", true},
		{"*", "anything/at all", true},
		{"order?", "orders", true},
		{"order?", "order", false},
		{"*_tmp", "x_tmp", true},
		{"*_tmp", "x_tmp_y", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXcYYb", false},
		{"*a", "*ba", true},
		{"??", "né", true},
		{"a**", "a", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestTableSelected(t *testing.T) {
	s := SourceConfig{
		Schemas:       []string{"public", "sales"},
		Tables:        []string{"public.orders", "sales.*", "line_item?"},
		ExcludeTables: []string{"*_tmp", "sales.secret"},
	}
	tests := []struct {
		schema, table string
		want          bool
	}{
		{"public", "orders", true},
		{"public", "customers", false},
		{"sales", "customers", true},
		{"sales", "secret", false},
		{"sales", "x_tmp", false},
		{"public", "line_items", true},
		{"sales", "line_items", true},
		{"other", "orders", false},
		{"other", "line_items", false},
	}
	for _, tt := range tests {
		if got := s.TableSelected(tt.schema, tt.table); got != tt.want {
			t.Errorf("TableSelected(%q, %q) = %v, want %v", tt.schema, tt.table, got, tt.want)
		}
	}

	var all SourceConfig // no Schemas: public; no Tables: every table
	if !all.TableSelected("public", "t") || all.TableSelected("sales", "t") {
		t.Errorf("zero SourceConfig: want every table of public and nothing else")
	}
}
