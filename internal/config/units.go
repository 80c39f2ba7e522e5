package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a [time.Duration] that reads from YAML and the environment as
// a Go duration string such as "10s", "500ms" or "1h30m". The words "off"
// and "0" mean zero; what zero means depends on the key (see each field).
// Negative durations are rejected.
type Duration time.Duration

// ParseDuration parses s as a [Duration]: a Go duration string ("10s",
// "1h30m"), or "off" or "0" for zero. Surrounding spaces are ignored. The
// error message says what was wrong and what a valid value looks like.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" || strings.EqualFold(s, "off") {
		return 0, nil
	}
	if s == "" {
		return 0, errors.New(`empty duration: write e.g. "10s", "500ms", "1h30m", or "off"`)
	}

	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, durationSyntaxError(s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s is negative: durations must be zero or positive", quote(s))
	}
	return Duration(d), nil
}

// durationSyntaxError explains the most common mistakes: a bare number
// (no unit) and units time.ParseDuration does not know, such as days.
func durationSyntaxError(s string) error {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return fmt.Errorf(`%s has no unit: write e.g. "%ss" for seconds or "%sms" for milliseconds`,
			quote(s), s, s)
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days > 0 && days < 100000 {
			return fmt.Errorf(`%s uses days, which Go durations lack: write "%dh" instead`,
				quote(s), days*24)
		}
	}
	return fmt.Errorf(`%s is not a duration: write e.g. "10s", "500ms", "1h30m", or "off"`, quote(s))
}

// String returns the duration in Go syntax, such as "1m30s"; zero is "0s".
func (d Duration) String() string {
	return time.Duration(d).String()
}

// UnmarshalYAML implements [yaml.Unmarshaler]. It accepts a scalar in the
// syntax of [ParseDuration].
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf(`expected a duration such as "10s", got %s`, describeNode(n)),
		}}
	}

	v, err := ParseDuration(n.Value)
	if err != nil {
		// A *yaml.TypeError lets the decoder go on with the other keys,
		// so every problem of a file is reported at once.
		return &yaml.TypeError{Errors: []string{err.Error()}}
	}
	*d = v
	return nil
}

// MarshalYAML implements [yaml.Marshaler]; it writes [Duration.String].
func (d Duration) MarshalYAML() (any, error) {
	return d.String(), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with the syntax of
// [ParseDuration], so a Duration can back a command-line flag.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements [encoding.TextMarshaler].
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// ByteSize is a number of bytes. It reads from YAML and the environment as
// an integer ("512", meaning bytes) or an integer with a unit: B, KB, MB,
// GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), with
// units matched case-insensitively ("8MiB", "16 GiB", "1gb"). Negative
// sizes and fractions are rejected.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

// byteUnits lists the accepted units, longest suffixes first so that "MiB"
// is not read as "B".
var byteUnits = []struct {
	suffix string
	size   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseByteSize parses s as a [ByteSize], for example "512", "64KiB",
// "8MiB", "16GiB" or "1GB". The error message says what was wrong and what
// a valid value looks like.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New(`empty size: write a number of bytes or a size such as "8MiB"`)
	}

	num, mult := s, int64(1)
	lower := strings.ToLower(s)
	for _, u := range byteUnits {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.size
			break
		}
	}

	if strings.HasPrefix(num, "-") {
		return 0, fmt.Errorf("%s is negative: sizes must be zero or positive", quote(s))
	}
	n, err := strconv.ParseUint(num, 10, 63)
	if err != nil {
		return 0, byteSizeSyntaxError(s, num, err)
	}
	if n > uint64(math.MaxInt64/mult) {
		return 0, fmt.Errorf("%s is too large: the limit is 8EiB", quote(s))
	}
	return ByteSize(int64(n) * mult), nil
}

func byteSizeSyntaxError(s, num string, err error) error {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return fmt.Errorf("%s is too large: the limit is 8EiB", quote(s))
	}
	if _, ferr := strconv.ParseFloat(num, 64); ferr == nil {
		return fmt.Errorf(`%s is not a whole number: use a smaller unit, `+
			`e.g. "1536MiB" rather than "1.5GiB"`, quote(s))
	}
	return fmt.Errorf(`%s is not a size: write a number of bytes or a number with a unit `+
		`(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. "8MiB"`, quote(s))
}

// String returns the size with the largest unit that divides it exactly,
// preferring binary units: 8388608 is "8MiB", 1000000000 is "1GB", 1500 is
// "1500B" and zero is "0B".
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	units := []struct {
		name string
		size int64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	}
	for _, u := range units {
		if int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// UnmarshalYAML implements [yaml.Unmarshaler]. It accepts a scalar in the
// syntax of [ParseByteSize].
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf(`expected a size such as "8MiB", got %s`, describeNode(n)),
		}}
	}

	v, err := ParseByteSize(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{err.Error()}}
	}
	*b = v
	return nil
}

// MarshalYAML implements [yaml.Marshaler]; it writes [ByteSize.String].
func (b ByteSize) MarshalYAML() (any, error) {
	return b.String(), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with the syntax of
// [ParseByteSize], so a ByteSize can back a command-line flag.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements [encoding.TextMarshaler].
func (b ByteSize) MarshalText() ([]byte, error) {
	return []byte(b.String()), nil
}
