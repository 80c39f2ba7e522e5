package config

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    Duration
		wantErr string // phrase of the error, "" for success
	}{
		{in: "10s", want: Duration(10 * time.Second)},
		{in: "1h30m", want: Duration(90 * time.Minute)},
		{in: "500ms", want: Duration(500 * time.Millisecond)},
		{in: " 2m ", want: Duration(2 * time.Minute)},
		{in: "off", want: 0},
		{in: "OFF", want: 0},
		{in: "0", want: 0},
		{in: "0s", want: 0},
		{in: "10", wantErr: `"10" has no unit`},
		{in: "1.5", wantErr: "has no unit"},
		{in: "7d", wantErr: `write "168h" instead`},
		{in: "-1s", wantErr: "is negative"},
		{in: "soon", wantErr: `"soon" is not a duration`},
		{in: "", wantErr: "empty duration"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseDuration(%q): unexpected error %v", tt.in, err)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseDuration(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    ByteSize
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "512", want: 512},
		{in: "512B", want: 512},
		{in: "64KiB", want: 64 << 10},
		{in: "8MiB", want: 8 << 20},
		{in: "16GiB", want: 16 << 30},
		{in: "2TiB", want: 2 << 40},
		{in: "1KB", want: 1000},
		{in: "1MB", want: 1000 * 1000},
		{in: "1GB", want: 1000 * 1000 * 1000},
		{in: "3TB", want: 3e12},
		{in: "8mib", want: 8 << 20},
		{in: "1gb", want: 1e9},
		{in: "16 GiB", want: 16 << 30},
		{in: " 7 ", want: 7},
		{in: "1.5GiB", wantErr: "not a whole number"},
		{in: "-1", wantErr: "is negative"},
		{in: "-8MiB", wantErr: "is negative"},
		{in: "8M", wantErr: "is not a size"},
		{in: "8 furlongs", wantErr: "is not a size"},
		{in: "MiB", wantErr: "is not a size"},
		{in: "", wantErr: "empty size"},
		{in: "9223372036854775807", want: 1<<63 - 1},
		{in: "9223372036854775808", wantErr: "too large"},
		{in: "8388608TiB", wantErr: "too large"},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("ParseByteSize(%q): unexpected error %v", tt.in, err)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseByteSize(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{512, "512B"},
		{1500, "1500B"},
		{1000, "1KB"},
		{8 * MiB, "8MiB"},
		{16 * GiB, "16GiB"},
		{1e9, "1GB"},
		{1536 * MiB, "1536MiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		back, err := ParseByteSize(tt.in.String())
		if err != nil || back != tt.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in.String(), back, err, int64(tt.in))
		}
	}
}

// TestUnitsYAML checks the YAML forms of Duration and ByteSize: plain YAML
// integers, strings, and the error for a non-scalar.
func TestUnitsYAML(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
		B ByteSize `yaml:"b"`
	}
	if err := yaml.Unmarshal([]byte("d: 1m\nb: 1048576\n"), &v); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if v.D != Duration(time.Minute) || v.B != MiB {
		t.Errorf("got d=%v b=%v, want 1m0s 1MiB", v.D, v.B)
	}

	err := yaml.Unmarshal([]byte("d: [1s]\nb: {x: 1}\n"), &v)
	if err == nil || !strings.Contains(err.Error(), "expected a duration") ||
		!strings.Contains(err.Error(), "expected a size") {
		t.Errorf("Unmarshal of non-scalars: error = %v, want both type complaints", err)
	}

	out, err := yaml.Marshal(struct {
		D Duration `yaml:"d"`
		B ByteSize `yaml:"b"`
	}{Duration(90 * time.Second), 16 * GiB})
	if err != nil || string(out) != "d: 1m30s\nb: 16GiB\n" {
		t.Errorf("Marshal = %q, %v; want %q", out, err, "d: 1m30s\nb: 16GiB\n")
	}
}

func TestUnitsText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("off")); err != nil || d != 0 {
		t.Errorf(`Duration.UnmarshalText("off") = %v, %v`, d, err)
	}
	if err := d.UnmarshalText([]byte("3s")); err != nil || d != Duration(3*time.Second) {
		t.Errorf(`Duration.UnmarshalText("3s") = %v, %v`, d, err)
	}
	var b ByteSize
	if err := b.UnmarshalText([]byte("2KiB")); err != nil || b != 2*KiB {
		t.Errorf(`ByteSize.UnmarshalText("2KiB") = %v, %v`, b, err)
	}
	if err := b.UnmarshalText([]byte("lots")); err == nil {
		t.Errorf(`ByteSize.UnmarshalText("lots") succeeded, want error`)
	}
}
