package changelog

import (
	"strings"
	"testing"
)

func TestEscapeTokenRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"plain", "orders", "orders"},
		{"safe_punctuation", "Order_Items-2", "Order_Items-2"},
		{"dot", "a.b", "a%2Eb"},
		{"star", "*", "%2A"},
		{"gt", ">", "%3E"},
		{"space", "order items", "order%20items"},
		{"percent", "100%", "100%25"},
		{"escape_lookalike", "%41", "%2541"},
		{"unicode", "zählung", "z%C3%A4hlung"},
		{"emoji", "🐘", "%F0%9F%90%98"},
		{"empty", "", "%"},
		{"nul", "\x00", "%00"},
		{"quote", `"x"`, "%22x%22"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EscapeToken(tt.in)
			if got != tt.want {
				t.Fatalf("EscapeToken(%q) = %q, want %q", tt.in, got, tt.want)
			}
			back, err := UnescapeToken(got)
			if err != nil {
				t.Fatalf("UnescapeToken(%q) error: %v", got, err)
			}
			if back != tt.in {
				t.Fatalf("UnescapeToken(%q) = %q, want %q", got, back, tt.in)
			}
		})
	}
}

func TestUnescapeTokenErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", "empty token"},
		{"truncated", "ab%4", "truncated escape at offset 2"},
		{"truncated_end", "ab%", "truncated escape at offset 2"},
		{"not_hex", "%ZZ", "invalid escape"},
		{"lower_hex", "%2e", "invalid escape"},
		{"escaped_safe", "%41", "must not be escaped"},
		{"raw_dot", "a.b", "must be escaped"},
		{"raw_space", "a b%20", "must be escaped"},
		{"raw_unicode", "ä", "must be escaped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UnescapeToken(tt.in)
			if err == nil {
				t.Fatalf("UnescapeToken(%q) = %q, want error containing %q", tt.in, got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("UnescapeToken(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func FuzzEscapeToken(f *testing.F) {
	seeds := []string{"", "orders", "a.b", "*", ">", " ", "%", "%41", "zählung", "\x00\xff", "a..b>"}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		esc := EscapeToken(s)
		if esc == "" {
			t.Fatalf("EscapeToken(%q) is empty", s)
		}
		for i := 0; i < len(esc); i++ {
			if c := esc[i]; !isSafeByte(c) && c != '%' {
				t.Fatalf("EscapeToken(%q) = %q holds unsafe byte %q", s, esc, c)
			}
		}
		back, err := UnescapeToken(esc)
		if err != nil {
			t.Fatalf("UnescapeToken(EscapeToken(%q) = %q) error: %v", s, esc, err)
		}
		if back != s {
			t.Fatalf("UnescapeToken(EscapeToken(%q)) = %q", s, back)
		}

		// Every token UnescapeToken accepts is canonical.
		if dec, err := UnescapeToken(s); err == nil && EscapeToken(dec) != s {
			t.Fatalf("EscapeToken(UnescapeToken(%q)) = %q", s, EscapeToken(dec))
		}
	})
}

func TestNames(t *testing.T) {
	if got, want := StreamName("shop-eu"), "PGTIDE_SHOP_EU"; got != want {
		t.Errorf("StreamName(%q) = %q, want %q", "shop-eu", got, want)
	}
	if got, want := SubjectPrefix("shop"), "pgtide.shop"; got != want {
		t.Errorf("SubjectPrefix(%q) = %q, want %q", "shop", got, want)
	}
	got, want := Subject("shop", "public", "order.items"), "pgtide.shop.public.order%2Eitems"
	if got != want {
		t.Errorf("Subject(shop, public, order.items) = %q, want %q", got, want)
	}
}

func TestParseSubject(t *testing.T) {
	for _, tc := range [][2]string{{"public", "orders"}, {"my schema", "a.b*>"}, {"", ""}, {"ü", "%"}} {
		subj := Subject("src", tc[0], tc[1])
		schema, table, err := ParseSubject("src", subj)
		if err != nil || schema != tc[0] || table != tc[1] {
			t.Errorf("ParseSubject(src, %q) = %q, %q, %v; want %q, %q, nil",
				subj, schema, table, err, tc[0], tc[1])
		}
	}

	bad := []string{"pgtide.other.public.t", "pgtide.src.public", "pgtide.src.a.b.c", "pgtide.src.a%2.b"}
	for _, subj := range bad {
		if _, _, err := ParseSubject("src", subj); err == nil {
			t.Errorf("ParseSubject(src, %q) succeeded, want error", subj)
		}
	}
}

func TestValidateSource(t *testing.T) {
	for _, ok := range []string{"shop", "Shop_1", "a-b"} {
		if err := ValidateSource(ok); err != nil {
			t.Errorf("ValidateSource(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a b", "a*", ">", "ä"} {
		if err := ValidateSource(bad); err == nil {
			t.Errorf("ValidateSource(%q) = nil, want error", bad)
		}
	}
}

func TestTableFilter(t *testing.T) {
	tests := []struct {
		pattern string
		want    string
	}{
		{"public.*", "pgtide.src.public.*"},
		{"*.*", "pgtide.src.*.*"},
		{"public.orders", "pgtide.src.public.orders"},
		{"*.orders", "pgtide.src.*.orders"},
		{" public.orders ", "pgtide.src.public.orders"},
		{`"odd.schema"."x*y"`, "pgtide.src.odd%2Eschema.x%2Ay"},
		{`public."*"`, "pgtide.src.public.%2A"},
		{`public."say ""hi"""`, "pgtide.src.public.say%20%22hi%22"},
		{"Public.Orders", "pgtide.src.Public.Orders"},
	}
	for _, tt := range tests {
		got, err := TableFilter("src", tt.pattern)
		if err != nil || got != tt.want {
			t.Errorf("TableFilter(src, %q) = %q, %v; want %q, nil", tt.pattern, got, err, tt.want)
		}
	}
}

func TestTableFilterErrors(t *testing.T) {
	tests := []struct {
		pattern string
		wantErr string
	}{
		{"public.ord*", "partial globs are not supported"},
		{"pub*.orders", "partial globs are not supported"},
		{"orders", "has 1 dot-separated parts, want 2"},
		{"a.b.c", "has 3 dot-separated parts, want 2"},
		{"", "empty pattern"},
		{"public.", "ends with '.'"},
		{".orders", "empty name"},
		{`"public.orders`, "unterminated quoted name"},
		{`"a"b.c`, "unexpected"},
		{`a"b.c`, "only in a quoted name"},
		{`"".c`, "empty quoted name"},
		{"*", "has 1 dot-separated parts"},
	}
	for _, tt := range tests {
		got, err := TableFilter("src", tt.pattern)
		if err == nil {
			t.Errorf("TableFilter(src, %q) = %q, want error containing %q", tt.pattern, got, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("TableFilter(src, %q) error = %q, want it to contain %q", tt.pattern, err, tt.wantErr)
		}
	}

	if _, err := TableFilter("bad.source", "public.*"); err == nil {
		t.Errorf("TableFilter(bad.source, public.*) succeeded, want error")
	}
}
