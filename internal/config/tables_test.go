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
