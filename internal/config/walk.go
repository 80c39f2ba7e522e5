package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// walkBudget bounds the number of keys and list items the walker visits.
// Real files stay far below it; aliases and merge keys can make a short
// hostile file expand exponentially.
const walkBudget = 100_000

// walker checks a YAML node tree against the shape of Config before it is
// decoded, so that every unknown key and every value of the wrong type is
// reported with its key path and line, not only the first. It also records
// where each key is and which keys were given.
type walker struct {
	p      *problems
	lines  map[string]int  // key path -> line of the key
	given  map[string]bool // key paths given with a non-null value
	hinted map[string]bool // key paths an unknown key was probably meant as
	nulls  map[string]bool // key paths given the literal word null
	budget int
	spent  bool // the budget ran out; the walk stopped early
}

func newWalker(p *problems) *walker {
	return &walker{
		p:      p,
		lines:  map[string]int{},
		given:  map[string]bool{},
		hinted: map[string]bool{},
		nulls:  map[string]bool{},
		budget: walkBudget,
	}
}

// spend uses n units of budget and reports whether the walk may go on.
func (w *walker) spend(n int) bool {
	if w.spent {
		return false
	}
	w.budget -= n
	if w.budget <= 0 {
		w.spent = true
		w.p.add("", "the document is too large or uses too many aliases and merge keys")
	}
	return !w.spent
}

// mapping walks n, which should hold the keys of struct type t.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		if path == "" {
			w.p.addLine("", n.Line, "the configuration must be a mapping of keys such as "+
				"\"data_dir:\" and \"sources:\", got %s", describeNode(n))
			return
		}
		w.p.addLine(path, n.Line, "expected a mapping of keys (key: value), got %s", describeNode(n))
		return
	}

	fields := yamlFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !w.spend(1) {
			return
		}
		k, v := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			w.merge(v, t, path)
			continue
		}

		kr := resolve(k)
		if kr.Kind != yaml.ScalarNode {
			w.p.addLine(path, k.Line, "keys must be plain names, got %s", describeNode(kr))
			continue
		}
		key := kr.Value
		kp := joinPath(path, key)
		if line, dup := seen[key]; dup {
			w.p.addLine(kp, k.Line, "given twice (first on line %d): keep one", line)
			continue
		}
		seen[key] = k.Line

		f, ok := fields[key]
		if !ok {
			w.unknown(path, key, k.Line, t)
			continue
		}
		w.lines[kp] = k.Line
		if rv := resolve(v); isNull(rv) {
			if rv.Value == "null" {
				w.nulls[kp] = true // meant as the word by masking rules
			}
			continue // an empty value means the default
		}
		w.given[kp] = true
		w.value(v, f.Type, kp)
	}
}

// merge walks the value of a "<<" merge key: a mapping or a list of them.
func (w *walker) merge(v *yaml.Node, t reflect.Type, path string) {
	v = resolve(v)
	switch v.Kind {
	case yaml.MappingNode:
		w.mapping(v, t, path)
	case yaml.SequenceNode:
		for _, item := range v.Content {
			if item = resolve(item); item.Kind != yaml.MappingNode {
				w.p.addLine(joinPath(path, "<<"), item.Line,
					"a merge key takes mappings, got %s", describeNode(item))
				continue
			}
			w.mapping(item, t, path)
		}
	default:
		w.p.addLine(joinPath(path, "<<"), v.Line,
			"a merge key takes a mapping or a list of mappings, got %s", describeNode(v))
	}
}

// value walks the value of a known key of type t.
func (w *walker) value(v *yaml.Node, t reflect.Type, path string) {
	switch {
	case t.Kind() == reflect.Struct:
		w.mapping(v, t, path)

	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		v = resolve(v)
		if v.Kind != yaml.SequenceNode {
			hint := ""
			if path == "replicas" && v.Kind == yaml.ScalarNode {
				hint = " (the number of copies of each stream is nats.replicas)"
			}
			w.p.addLine(path, v.Line,
				"expected a list (items starting with \"- \"), got %s%s", describeNode(v), hint)
			return
		}
		for i, item := range v.Content {
			if !w.spend(1) {
				return
			}
			ip := fmt.Sprintf("%s[%d]", path, i)
			w.lines[ip] = item.Line
			w.mapping(item, t.Elem(), ip)
		}

	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.Struct:
		w.namedMappings(v, t.Elem(), path)

	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.String:
		w.stringMap(v, path)

	default:
		w.leaf(v, t, path)
	}
}

// stringMap walks a mapping of names to single values, such as the proxy
// users.
func (w *walker) stringMap(v *yaml.Node, path string) {
	v = resolve(v)
	if v.Kind != yaml.MappingNode {
		w.p.addLine(path, v.Line, "expected %s, got %s",
			describeType(reflect.TypeFor[map[string]string]()), describeKind(v))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		if !w.spend(1) {
			return
		}
		k, item := resolve(v.Content[i]), resolve(v.Content[i+1])
		if k.Kind != yaml.ScalarNode || isMergeKey(k) {
			w.p.addLine(path, k.Line, "names must be plain scalars, got %s", describeNode(k))
			continue
		}
		ip := joinPath(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			w.p.addLine(ip, k.Line, "given twice (first on line %d): keep one", line)
			continue
		}
		seen[k.Value] = k.Line
		w.lines[ip] = k.Line
		if item.Kind != yaml.ScalarNode {
			w.p.addLine(ip, item.Line, "expected a single value, got %s", describeNode(item))
		}
	}
}

// namedMappings walks a mapping of names to mappings of keys of struct
// type t, such as the datasets.
func (w *walker) namedMappings(v *yaml.Node, t reflect.Type, path string) {
	v = resolve(v)
	if v.Kind != yaml.MappingNode {
		w.p.addLine(path, v.Line, "expected a mapping of names to settings (name: {key: value}), got %s",
			describeNode(v))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		if !w.spend(1) {
			return
		}
		k, item := resolve(v.Content[i]), v.Content[i+1]
		if k.Kind != yaml.ScalarNode || isMergeKey(k) {
			w.p.addLine(path, k.Line, "names must be plain scalars, got %s", describeNode(k))
			continue
		}
		ip := joinPath(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			w.p.addLine(ip, k.Line, "given twice (first on line %d): keep one", line)
			continue
		}
		seen[k.Value] = k.Line
		w.lines[ip] = k.Line
		w.given[ip] = true
		w.mapping(item, t, ip)
	}
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// leaf decodes a plain value to check its type.
func (w *walker) leaf(v *yaml.Node, t reflect.Type, path string) {
	// Decoding costs about one unit per list item.
	rv := resolve(v)
	if !w.spend(1 + len(rv.Content)) {
		return
	}
	if rv.Kind == yaml.SequenceNode {
		for i, item := range rv.Content {
			w.lines[fmt.Sprintf("%s[%d]", path, i)] = item.Line
		}
	}

	err := v.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && reflect.PointerTo(t).Implements(unmarshalerType) {
		// Duration and ByteSize explain themselves.
		w.p.addLine(path, v.Line, "%s", strings.Join(te.Errors, "; "))
		return
	}
	if secretPath(path) {
		// The value may be a password: say what it is, not what it holds.
		w.p.addLine(path, v.Line, "expected %s, got %s", describeType(t), describeKind(rv))
		return
	}
	if rv := resolve(v); t.Kind() == reflect.Slice && rv.Kind == yaml.ScalarNode && !isNull(rv) {
		w.p.addLine(path, v.Line, "expected a list, got %s: write [%s]", describeNode(rv), rv.Value)
		return
	}
	w.p.addLine(path, v.Line, "expected %s, got %s", describeType(t), describeNode(v))
}

// unknown reports a key that t does not have, with a likely correction.
func (w *walker) unknown(path, key string, line int, t reflect.Type) {
	kp := joinPath(path, key)
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range yamlFields(t) {
			if !yield(name) {
				return
			}
		}
	})

	if guess := closest(key, names); guess != "" {
		w.hinted[joinPath(path, guess)] = true
		w.p.addLine(kp, line, "unknown key: did you mean %q?", guess)
		return
	}
	if where := keyLocations()[key]; len(where) > 0 {
		w.p.addLine(kp, line, "unknown key here: it is valid as %s", strings.Join(where, " or "))
		return
	}
	w.p.addLine(kp, line, "unknown key: the keys here are %s", strings.Join(names, ", "))
}

// secretPath reports whether the value at path may hold a password,
// which no message may show.
func secretPath(path string) bool {
	return path == "proxy.users" || strings.HasPrefix(path, "proxy.users.") ||
		strings.HasSuffix(path, ".salt") || path == "gateway.jwt.hs256_secret"
}

// describeKind says what kind of YAML node n is, without its value.
func describeKind(n *yaml.Node) string {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		return "a single value"
	}
	return describeNode(n)
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// isMergeKey reports whether k is the "<<" key of a YAML merge.
func isMergeKey(k *yaml.Node) bool {
	if k.Kind != yaml.ScalarNode || k.Value != "<<" {
		return false
	}
	return k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge"
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describeType names what a value of type t looks like in YAML.
func describeType(t reflect.Type) string {
	switch {
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool, t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int:
		return "a whole number"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "a list of names such as [a, b]"
	case t.Kind() == reflect.Map:
		return "a mapping of names to values (name: value)"
	default:
		return t.String()
	}
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.StructField

// yamlFields maps the YAML keys of struct type t to its fields.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.StructField)
	}
	m := map[string]reflect.StructField{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		m[name] = f
	}
	fieldCache.Store(t, m)
	return m
}

// keyLocations maps every key of the configuration to the paths it is
// valid at, such as "sources[].heartbeat_interval", for the message about a
// key put under the wrong parent.
var keyLocations = sync.OnceValue(func() map[string][]string {
	m := map[string][]string{}
	var visit func(t reflect.Type, path string)
	visit = func(t reflect.Type, path string) {
		for name, f := range yamlFields(t) {
			kp := joinPath(path, name)
			m[name] = append(m[name], kp)
			switch ft := f.Type; {
			case ft.Kind() == reflect.Struct:
				visit(ft, kp)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				visit(ft.Elem(), kp+"[]")
			case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct:
				visit(ft.Elem(), kp+".<name>")
			}
		}
	}
	visit(reflect.TypeFor[Config](), "")
	for _, paths := range m {
		slices.Sort(paths)
	}
	return m
})

// closest returns the candidate nearest to key by edit distance when it is
// near enough to be a likely typo, or "".
func closest(key string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(key, c); d < bestDist && d < len(key) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, counting
// bytes; keys are ASCII.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30 // no key is that long; skip the work
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
