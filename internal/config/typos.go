package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"destination-keen/schemas"
)

// Typos in a config pass validation (the spec lets Airbyte add fields of its
// own), so a mistyped option would silently take its default. Parse looks
// for fields the spec does not know and names the option each was probably
// meant to be; check and write log them as warnings, and a required field
// reported missing names the near-miss that was given instead.

// options are the spec's field names.
var options = func() []string {
	var spec struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(schemas.Raw(schemas.ConfigFile), &spec); err != nil {
		panic(fmt.Sprintf("the embedded config schema: %v", err))
	}
	var names []string
	for n := range spec.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}()

// unknownFields returns a warning for each top-level field of doc that is
// not an option, the likely typos first, each group sorted, at most
// maxFieldWarnings and a count of the rest; and the near-misses by the
// option they miss.
func unknownFields(doc []byte) (warnings []string, nearMiss map[string]string) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(doc, &fields) != nil {
		return nil, nil
	}
	nearMiss = map[string]string{}
	var others []string
	for name := range fields {
		if slices.Contains(options, name) {
			continue
		}
		if near := nearest(name); near != "" {
			nearMiss[near] = name
			warnings = append(warnings, fmt.Sprintf("%q is not an option of this connector; did you mean %q? It is ignored, and %s takes its default unless set", shortName(name), near, near))
		} else {
			others = append(others, fmt.Sprintf("%q is not an option of this connector; it is ignored", shortName(name)))
		}
	}
	// Likely typos first: they are what the user must fix.
	sort.Strings(warnings)
	sort.Strings(others)
	warnings = append(warnings, others...)
	if n := len(warnings) - maxFieldWarnings; n > 0 {
		warnings = append(warnings[:maxFieldWarnings], fmt.Sprintf("and %d more fields that are not options of this connector are ignored", n))
	}
	return warnings, nearMiss
}

// maxFieldWarnings caps the warnings about fields that are not options: a
// config with thousands of them gets this many lines and a count.
const maxFieldWarnings = 20

// nearest returns the option closest to name when it is close enough to be
// a typo of it (an edit distance of at most a third of its length, and at
// most 3), or "".
func nearest(name string) string {
	best, bestD := "", 4
	for _, o := range options {
		d := editDistance(name, o)
		if d < bestD && d*3 <= len(o) {
			best, bestD = o, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
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

// shortName keeps a field's name readable in a log; names are the user's
// own words, never values.
func shortName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
