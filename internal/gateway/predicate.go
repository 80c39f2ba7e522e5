package gateway

import (
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// maxPredicateLen bounds the text of a row predicate.
const maxPredicateLen = 4096

// predicateTemplate declares the variables a row predicate may use, so
// that an unknown name fails at compile time.
var predicateTemplate = map[string]any{
	"op":     "",
	"schema": "",
	"table":  "",
	"new":    map[string]any{},
	"old":    map[string]any{},
}

// predicate is a compiled row predicate. Programs are safe for concurrent
// use.
type predicate struct {
	text string
	prog *vm.Program
}

// compilePredicate compiles a row predicate in the expr language
// (https://expr-lang.org) over the variables new, old (maps of column
// name to value), op, schema and table. It must yield a bool. The error is
// an *Error with code invalid_predicate and expr's position.
func compilePredicate(where string) (*predicate, error) {
	if len(where) > maxPredicateLen {
		return nil, errorf(CodeInvalidPredicate, "where is %d bytes long, at most %d allowed", len(where), maxPredicateLen)
	}
	prog, err := expr.Compile(where,
		expr.Env(predicateTemplate),
		expr.AsBool(),
		expr.MaxNodes(500),
	)
	if err != nil {
		return nil, errorf(CodeInvalidPredicate, "where: %v", err)
	}
	return &predicate{text: where, prog: prog}, nil
}

// match evaluates the predicate on env. A failure to evaluate (such as
// comparing a missing column with a number) counts as false.
func (p *predicate) match(env map[string]any) (bool, error) {
	out, err := expr.Run(p.prog, env)
	if err != nil {
		return false, err
	}
	ok, _ := out.(bool)
	return ok, nil
}
