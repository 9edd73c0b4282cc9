// Package diff compares two definitions of the Airbyte protocol, the
// official one (YAML, as Airbyte publishes it) and the project's schema
// (JSON), definition by definition: what one lacks or adds, and where their
// types, references, enums, required members, additionalProperties,
// minItems, formats or defaults differ. Descriptions, titles and examples
// are prose and are not compared; neither are members that only code
// generators read (goJSONSchema, existingJavaType).
package diff

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
)

// Kinds of difference.
const (
	Lacks = "lacks" // the official definition has it, ours does not
	Adds  = "adds"  // ours has it, the official definition does not
	Type  = "type"  // type, $ref, format, minItems, default or additionalProperties differ
	Enum  = "enum"  // enum values differ
	Req   = "required"
)

// Difference is one way in which the project's schema departs from the
// official definition, at Path (Definition.properties.member...).
type Difference struct {
	Kind   string
	Path   string
	Detail string
}

func (d Difference) String() string {
	if d.Detail == "" {
		return d.Kind + " " + d.Path
	}
	return d.Kind + " " + d.Path + ": " + d.Detail
}

// Load reads a schema document, YAML or JSON, into its generic form.
func Load(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse reads a YAML or JSON schema document.
func Parse(b []byte) (map[string]any, error) {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	return ParseJSON(j)
}

// ParseJSON reads a JSON schema document, numbers kept exact.
func ParseJSON(j []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(j))
	d.UseNumber()
	var doc map[string]any
	if err := d.Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// ToJSON reads a YAML or JSON document and writes it as JSON.
func ToJSON(b []byte) ([]byte, error) { return yaml.YAMLToJSON(b) }

// Compare lists how ours departs from official: the root's properties and
// every definition, sorted by path.
func Compare(official, ours map[string]any) []Difference {
	out := members(official["properties"], ours["properties"], func(n string) string { return "(root)." + n })
	out = append(out, members(official["definitions"], ours["definitions"], func(n string) string { return n })...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// members compares two maps of named schemas (definitions or properties):
// the names one lacks or adds, and the differences of those both have, each
// at path(name).
func members(a, b any, path func(string) string) []Difference {
	ma, _ := a.(map[string]any)
	mb, _ := b.(map[string]any)
	var out []Difference
	for _, name := range union(ma, mb) {
		p := path(name)
		ca, inA := ma[name].(map[string]any)
		cb, inB := mb[name].(map[string]any)
		switch {
		case !inB:
			out = append(out, Difference{Kind: Lacks, Path: p})
		case !inA:
			out = append(out, Difference{Kind: Adds, Path: p})
		default:
			out = append(out, node(p, ca, cb)...)
		}
	}
	return out
}

// compared are the members of a schema node that carry meaning.
var compared = []string{"type", "$ref", "format", "minItems", "default", "additionalProperties"}

func node(path string, a, b map[string]any) []Difference {
	var out []Difference
	for _, k := range compared {
		va, okA := a[k]
		vb, okB := b[k]
		if okA != okB || !reflect.DeepEqual(va, vb) {
			out = append(out, Difference{Kind: Type, Path: path + "." + k, Detail: fmt.Sprintf("official %s, ours %s", show(va, okA), show(vb, okB))})
		}
	}
	if lack, add := setDiff(a["enum"], b["enum"]); len(lack)+len(add) > 0 {
		out = append(out, Difference{Kind: Enum, Path: path, Detail: describe(lack, add)})
	}
	if lack, add := setDiff(a["required"], b["required"]); len(lack)+len(add) > 0 {
		out = append(out, Difference{Kind: Req, Path: path, Detail: describe(lack, add)})
	}
	out = append(out, members(a["properties"], b["properties"], func(n string) string { return path + ".properties." + n })...)
	ia, inA := a["items"].(map[string]any)
	ib, inB := b["items"].(map[string]any)
	switch {
	case inA && inB:
		out = append(out, node(path+".items", ia, ib)...)
	case inA != inB:
		out = append(out, Difference{Kind: Type, Path: path + ".items", Detail: fmt.Sprintf("official %s, ours %s", show(a["items"], inA), show(b["items"], inB))})
	}
	oa, _ := a["oneOf"].([]any)
	ob, _ := b["oneOf"].([]any)
	if len(oa) != len(ob) {
		out = append(out, Difference{Kind: Type, Path: path + ".oneOf", Detail: fmt.Sprintf("official %d choices, ours %d", len(oa), len(ob))})
	} else {
		for i := range oa {
			ca, _ := oa[i].(map[string]any)
			cb, _ := ob[i].(map[string]any)
			out = append(out, node(fmt.Sprintf("%s.oneOf[%d]", path, i), ca, cb)...)
		}
	}
	return out
}

func show(v any, ok bool) string {
	if !ok {
		return "none"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func union(a, b map[string]any) []string {
	var names []string
	for k := range a {
		names = append(names, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// setDiff returns the strings of a missing from b, and of b missing from a.
func setDiff(a, b any) (lack, add []string) {
	sa, sb := strs(a), strs(b)
	for _, s := range sa {
		if !slices.Contains(sb, s) {
			lack = append(lack, s)
		}
	}
	for _, s := range sb {
		if !slices.Contains(sa, s) {
			add = append(add, s)
		}
	}
	return lack, add
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func describe(lack, add []string) string {
	var parts []string
	if len(lack) > 0 {
		parts = append(parts, "ours lacks "+strings.Join(lack, ", "))
	}
	if len(add) > 0 {
		parts = append(parts, "ours adds "+strings.Join(add, ", "))
	}
	return strings.Join(parts, "; ")
}

// Allowed is a difference the project accepts, and why.
type Allowed struct {
	Kind, Path, Why string
}

// ReadAllowList reads lines of "kind path: why"; blank lines and lines
// starting with # are skipped. Every entry must say why.
func ReadAllowList(path string) ([]Allowed, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Allowed
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, why, ok := strings.Cut(line, ": ")
		kind, p, ok2 := strings.Cut(head, " ")
		if !ok || !ok2 || strings.TrimSpace(why) == "" {
			return nil, fmt.Errorf("%s:%d: want \"kind path: why\"", path, n)
		}
		out = append(out, Allowed{Kind: kind, Path: p, Why: strings.TrimSpace(why)})
	}
	return out, sc.Err()
}

// Filter splits diffs into those no entry allows, and lists the entries
// that allow nothing (stale: the difference they explain is gone).
func Filter(diffs []Difference, allow []Allowed) (unexplained []Difference, stale []Allowed) {
	used := make([]bool, len(allow))
	for _, d := range diffs {
		i := slices.IndexFunc(allow, func(a Allowed) bool { return a.Kind == d.Kind && a.Path == d.Path })
		if i < 0 {
			unexplained = append(unexplained, d)
			continue
		}
		used[i] = true
	}
	for i, a := range allow {
		if !used[i] {
			stale = append(stale, a)
		}
	}
	return unexplained, stale
}
