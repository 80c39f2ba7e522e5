package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem with one configuration key.
type FieldError struct {
	// Path names the key: "sources[1].heartbeat_interval" for a file key,
	// "env PGTIDE_LOG_LEVEL" for an environment variable, or "" for a
	// problem with the document as a whole (a YAML syntax error).
	Path string

	// Message says what is wrong and what a valid value looks like. It
	// never contains a password.
	Message string

	// Line is the line of the configuration file the problem was found on,
	// counting from 1, or 0 when unknown (for example when the value came
	// from a default or the environment, or when the error comes from
	// [Config.Validate], which does not know the file).
	Line int
}

// Error returns "path: message", or the message alone when Path is empty.
func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ValidationError is the error returned for any problem with the content of
// a configuration: YAML syntax, unknown keys, values of the wrong type and
// values that fail validation. It lists every problem found, not only the
// first.
type ValidationError struct {
	// File is the name of the configuration file given to [Parse] or
	// [Load], or "" when there is none.
	File string

	// Errors holds one entry per problem, in the order found.
	Errors []FieldError
}

// Error returns one line per problem, joined as by [errors.Join]. A problem
// whose line is known is prefixed by "file:line: ".
func (e *ValidationError) Error() string {
	return errors.Join(e.Unwrap()...).Error()
}

// Unwrap returns the problems as errors, each with the file position
// prefix of [ValidationError.Error], so that [errors.As] finds a
// [FieldError] inside a ValidationError.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = positionedError{file: e.File, fe: fe}
	}
	return errs
}

// positionedError prints a FieldError with its file position.
type positionedError struct {
	file string
	fe   FieldError
}

func (p positionedError) Error() string {
	switch {
	case p.fe.Line > 0 && p.file != "":
		return fmt.Sprintf("%s:%d: %s", p.file, p.fe.Line, p.fe.Error())
	case p.fe.Line > 0:
		return fmt.Sprintf("line %d: %s", p.fe.Line, p.fe.Error())
	default:
		return p.fe.Error()
	}
}

func (p positionedError) Unwrap() error { return p.fe }

// problems collects FieldErrors while a configuration is checked.
type problems struct {
	list []FieldError
}

func (p *problems) add(path, format string, args ...any) {
	p.list = append(p.list, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) addLine(path string, line int, format string, args ...any) {
	p.list = append(p.list, FieldError{Path: path, Message: fmt.Sprintf(format, args...), Line: line})
}

// sortByLine orders the problems by file line, keeping the order of
// problems on one line; problems without a line go last.
func (p *problems) sortByLine() {
	key := func(fe FieldError) int {
		if fe.Line == 0 {
			return math.MaxInt
		}
		return fe.Line
	}
	slices.SortStableFunc(p.list, func(a, b FieldError) int {
		return cmp.Compare(key(a), key(b))
	})
}

// err returns nil when nothing was collected, so that the result compares
// equal to nil as an error interface.
func (p *problems) err(file string) error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{File: file, Errors: p.list}
}

// quote returns s as a Go string literal, shortened to about 60 characters
// so that a long value does not drown the message.
func quote(s string) string {
	const limit = 60
	if utf8.RuneCountInString(s) > limit {
		r := []rune(s)
		return strconv.Quote(string(r[:limit])) + "..."
	}
	return strconv.Quote(s)
}

// describeNode says what a YAML node holds, for "expected X, got Y"
// messages.
func describeNode(n *yaml.Node) string {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value pairs)"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return quote(n.Value)
	default:
		return "an unexpected YAML node"
	}
}

// joinWords returns "a, b or c" with each word quoted.
func joinWords(words []string, conj string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strconv.Quote(w)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}
