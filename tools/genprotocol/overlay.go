package main

import (
	"fmt"
	"maps"
)

// Overlay is what the Go types need beyond the schema: rules that set
// members on every schema node they match.
type Overlay struct {
	About string `json:"about"`
	Rules []Rule `json:"rules"`
}

// Rule sets Set's members on every node Match names, and removes Unset's:
//   - "free-form object": type object without properties or a $ref;
//   - "integer": type integer;
//   - "open object": additionalProperties true.
type Rule struct {
	Match string         `json:"match"`
	Set   map[string]any `json:"set"`
	Unset []string       `json:"unset"`
	Why   string         `json:"why"`
}

func (r Rule) matches(node map[string]any) (bool, error) {
	switch r.Match {
	case "free-form object":
		_, props := node["properties"]
		_, ref := node["$ref"]
		return node["type"] == "object" && !props && !ref, nil
	case "integer":
		return node["type"] == "integer", nil
	case "open object":
		return node["additionalProperties"] == true, nil
	}
	return false, fmt.Errorf("overlay: unknown match %q", r.Match)
}

// Apply sets each rule's members on the nodes of doc's definitions it
// matches, and fails when a rule matches nothing (it is then stale). A
// definition that is a free-form object is first put in place of each
// reference to it and dropped: a Go type defined as json.RawMessage would
// lose its methods and encode as base64.
func (o Overlay) Apply(doc map[string]any) error {
	defs, _ := doc["definitions"].(map[string]any)
	free := Rule{Match: "free-form object"}
	for name, d := range defs {
		node, _ := d.(map[string]any)
		if ok, _ := free.matches(node); !ok {
			continue
		}
		ref := "#/definitions/" + name
		walk(doc, func(n map[string]any) {
			if n["$ref"] == ref {
				delete(n, "$ref")
				maps.Copy(n, node)
			}
		})
		delete(defs, name)
	}
	for _, r := range o.Rules {
		if r.Why == "" {
			return fmt.Errorf("overlay: the rule for %q says not why", r.Match)
		}
		n := 0
		var err error
		walk(doc["definitions"], func(node map[string]any) {
			ok, e := r.matches(node)
			if e != nil {
				err = e
			}
			if ok {
				maps.Copy(node, r.Set)
				for _, k := range r.Unset {
					delete(node, k)
				}
				n++
			}
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("overlay: the rule for %q matches nothing", r.Match)
		}
	}
	return nil
}

// walk calls fn on every schema object under v, depth first.
func walk(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(v)
		for _, c := range v {
			walk(c, fn)
		}
	case []any:
		for _, c := range v {
			walk(c, fn)
		}
	}
}
