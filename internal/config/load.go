package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration: the YAML file at path ("" means no file),
// then the environment (see [Config.ApplyEnv]), then defaults, and
// validates the result. It replaces the "env:" and "file:" references of
// proxy.users by the secrets they name ([ProxyConfig.Users]); one that
// names an unset or empty variable, or a missing, empty or unreadable
// file, is a problem. Command-line flags come last: the caller sets
// them on the returned Config and calls [Config.Validate] again.
//
// A problem with the file's content or the environment returns a
// [*ValidationError] listing every problem, with file lines where known;
// a file that cannot be read returns its [os.ReadFile] error, wrapped. On
// error the returned Config is the zero value.
func Load(path string) (Config, error) {
	return load(path, os.LookupEnv)
}

func load(path string, lookup func(string) (string, bool)) (Config, error) {
	var (
		doc document
		p   problems
	)
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		doc = decode(data, &p)
		if doc.fatal {
			return Config{}, p.err(path)
		}
	}

	before := doc.cfg.envView()
	if err := doc.cfg.ApplyEnv(lookup); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return Config{}, err
		}
		p.list = append(p.list, ve.Errors...)
	}
	doc.fromEnv = doc.cfg.envChanges(before)
	doc.resolveUsers(&p, lookup)

	doc.cfg.ApplyDefaults()
	doc.validate(&p)
	p.sortByLine()
	if err := p.err(path); err != nil {
		return Config{}, err
	}
	return doc.cfg, nil
}

// Parse reads a configuration from YAML bytes, applies defaults and
// validates it; it does not read the environment. name, such as the file
// name, prefixes the line numbers in messages ("pgtide.yaml:12: ...").
//
// Any problem returns a [*ValidationError] listing every problem found:
// YAML syntax (with its line), unknown keys, values of the wrong type and
// invalid values. Empty input is a valid configuration with defaults and
// no sources. On error the returned Config is the zero value.
func Parse(data []byte, name string) (Config, error) {
	var p problems
	doc := decode(data, &p)
	if doc.fatal {
		return Config{}, p.err(name)
	}

	doc.cfg.ApplyDefaults()
	doc.validate(&p)
	p.sortByLine()
	if err := p.err(name); err != nil {
		return Config{}, err
	}
	return doc.cfg, nil
}

// document is a configuration decoded from YAML, with what is known about
// where its keys came from.
type document struct {
	cfg Config

	// fatal is set when the YAML could not be decoded at all: a syntax
	// error, or a document too costly to walk. Nothing is validated then.
	fatal bool

	// lines maps key paths to file lines.
	lines map[string]int

	// failed holds the paths of values that failed to decode, and hinted
	// the paths an unknown key was probably meant as: validation problems
	// at or under them repeat a problem already reported.
	failed []string
	hinted map[string]bool

	// skipSources is set when a source list item could not be decoded:
	// the decoder drops such items, so later indexes no longer match the
	// file.
	skipSources bool

	// fromEnv maps key paths set by the environment to the variable.
	fromEnv map[string]string
}

// yamlErrorRE splits a yaml.v3 syntax error into line and message.
var yamlErrorRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// decode parses data into a document, adding problems to p. It does not
// apply defaults or validate.
func decode(data []byte, p *problems) document {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return document{} // empty or only comments
	case err != nil:
		addSyntaxError(p, err, data)
		return document{fatal: true}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.addLine("", extra.Line,
			"the file holds more than one YAML document: keep one (remove the \"---\" line)")
		return document{fatal: true}
	case !errors.Is(err, io.EOF):
		addSyntaxError(p, err, data)
		return document{fatal: true}
	}

	before := len(p.list)
	w := newWalker(p)
	if len(root.Content) > 0 {
		w.mapping(root.Content[0], reflect.TypeFor[Config](), "")
	}
	walked := p.list[before:]
	if w.spent {
		return document{fatal: true}
	}

	// The walker has checked the shape; the decoder with KnownFields is
	// the authority on values. Should it still object to something, that
	// is reported rather than lost.
	var cfg Config
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	err := strict.Decode(&cfg)
	var te *yaml.TypeError
	switch {
	case err == nil:
	case !errors.As(err, &te):
		// The decoder gave up (excessive aliasing, say): cfg is partial
		// and not worth validating.
		if len(walked) == 0 {
			p.add("", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return document{fatal: true}
	case len(walked) == 0:
		for _, msg := range te.Errors {
			p.add("", "%s", msg)
		}
	}

	doc := document{cfg: cfg, lines: w.lines, hinted: w.hinted}
	for _, fe := range p.list[before:] {
		doc.failed = append(doc.failed, fe.Path)
		if sourceItemRE.MatchString(fe.Path) || fe.Path == "" {
			doc.skipSources = true
		}
	}
	doc.cfg.given, doc.cfg.Sources = splitGiven(w.given, doc.cfg.Sources)
	nullMethods(&doc.cfg, w.nulls)
	return doc
}

// nullMethods sets the method of masking rules written "method: null",
// which YAML reads as no value, to the null method the writer meant.
func nullMethods(c *Config, nulls map[string]bool) {
	for name, d := range c.Datasets {
		for i := range d.Rules {
			if nulls[fmt.Sprintf("datasets.%s.rules[%d].method", name, i)] {
				d.Rules[i].Method = MaskNull
			}
		}
	}
}

// sourceItemRE matches the path of a whole source list item.
var sourceItemRE = regexp.MustCompile(`^sources\[\d+\]$`)

// addSyntaxError reports a yaml.v3 parse error with its line.
func addSyntaxError(p *problems, err error, data []byte) {
	m := yamlErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		p.add("", "YAML syntax error: %s", err)
		return
	}
	line, _ := strconv.Atoi(m[1])
	msg := "YAML syntax error: " + m[2]
	if lines := bytes.Split(data, []byte("\n")); line > 0 && line <= len(lines) &&
		bytes.HasPrefix(bytes.TrimLeft(lines[line-1], " "), []byte("\t")) {
		msg += " (a tab indents this line; YAML indents with spaces only)"
	}
	p.addLine("", line, "%s", msg)
}

// splitGiven distributes the given key paths: source keys to their source,
// relative to it, and the rest to the Config.
func splitGiven(given map[string]bool, sources []SourceConfig) (keySet, []SourceConfig) {
	top := keySet{}
	for path := range given {
		rest, ok := strings.CutPrefix(path, "sources[")
		if !ok {
			top[path] = true
			continue
		}
		idx, key, ok := strings.Cut(rest, "].")
		i, err := strconv.Atoi(idx)
		if !ok || err != nil || i < 0 || i >= len(sources) {
			continue
		}
		if sources[i].given == nil {
			sources[i].given = keySet{}
		}
		sources[i].given[key] = true
	}
	return top, sources
}

// validate runs Config.validate and adds its problems to p, with file
// lines, leaving out problems that repeat one found while decoding.
func (d *document) validate(p *problems) {
	var vp problems
	d.cfg.validate(&vp)

	for _, fe := range vp.list {
		if d.repeats(fe.Path) {
			continue
		}
		if env, ok := d.envFor(fe.Path); ok {
			fe.Message += " (from " + env + ")"
		} else {
			fe.Line = d.lineOf(fe.Path)
		}
		p.list = append(p.list, fe)
	}
}

// repeats reports whether a validation problem at path repeats one found
// while decoding.
func (d *document) repeats(path string) bool {
	if d.skipSources && strings.HasPrefix(path, "sources[") {
		return true
	}
	// "nmae: x" already says "did you mean name?"; "name: missing" would
	// only repeat it. A key that is present is judged on its own.
	if _, present := d.lines[path]; d.hinted[path] && !present {
		return true
	}
	for _, f := range d.failed {
		if path == f || strings.HasPrefix(path, f+".") || strings.HasPrefix(path, f+"[") {
			return true
		}
	}
	return false
}

// lineOf returns the file line of path, or of its nearest parent in the
// file, or 0.
func (d *document) lineOf(path string) int {
	for p := range pathAndParents(path) {
		if line, ok := d.lines[p]; ok {
			return line
		}
	}
	return 0
}

// envFor returns the environment variable that set path or a parent of it.
func (d *document) envFor(path string) (string, bool) {
	for p := range pathAndParents(path) {
		if env, ok := d.fromEnv[p]; ok {
			return env, true
		}
	}
	return "", false
}

// pathAndParents yields path, then each parent: "sources[1].retention.max_age",
// "sources[1].retention", "sources[1]", "sources".
func pathAndParents(path string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for path != "" {
			if !yield(path) {
				return
			}
			i := strings.LastIndexAny(path, ".[")
			if i < 0 {
				return
			}
			path = path[:i]
		}
	}
}

// envView captures the fields ApplyEnv may set, to tell afterwards which
// ones it changed.
type envView struct {
	top  map[string]string
	dsns []string
}

func (c *Config) envView() envView {
	v := envView{top: map[string]string{
		"data_dir":        c.DataDir,
		"log.level":       c.Log.Level,
		"log.format":      c.Log.Format,
		"admin.listen":    c.Admin.Listen,
		"nats.url":        c.NATS.URL,
		"nats.creds_file": c.NATS.CredsFile,
	}}
	for _, s := range c.Sources {
		v.dsns = append(v.dsns, s.DSN)
	}
	return v
}

// envChanges maps the paths whose values differ from before to the
// environment variable that set them.
func (c *Config) envChanges(before envView) map[string]string {
	env := map[string]string{
		"data_dir":        EnvDataDir,
		"log.level":       EnvLogLevel,
		"log.format":      EnvLogFormat,
		"admin.listen":    EnvAdminListen,
		"nats.url":        EnvNATSURL,
		"nats.creds_file": EnvNATSCredsFile,
	}
	changed := map[string]string{}
	now := c.envView()
	for path, v := range now.top {
		if before.top[path] != v {
			changed[path] = env[path]
		}
	}
	for i, dsn := range now.dsns {
		if i >= len(before.dsns) {
			changed[fmt.Sprintf("sources[%d]", i)] = EnvSourceDSN
			continue
		}
		if before.dsns[i] != dsn {
			changed[fmt.Sprintf("sources[%d].dsn", i)] = EnvSourceDSN
		}
	}
	return changed
}
