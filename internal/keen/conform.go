package keen

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"unicode/utf8"

	"destination-keen/internal/jsonx"
)

// Keen's rules on an event's properties (its data-modeling guide,
// "Properties" and "Property Data Types"): a name is under 256 characters,
// does not start with '$' and holds no '.'; an array holds primitives only.
// The keen object has rules of its own (keen.addons is an array of objects)
// and is left to AppendEvent.
//
// Keen takes nothing else on the Kafka path and says nothing when it drops an
// event, so Conform makes every record an event Keen takes, keeping every
// value:
//   - a '.' in a name becomes '_', a leading '$' becomes '_', an empty name
//     becomes "_", and a name over MaxPropertyName bytes keeps its first 246
//     bytes (whole characters) followed by '_' and 8 hex digits of a hash of
//     the whole name, so that two long names that share a start stay apart;
//   - a new name that a sibling already has gets "_2", "_3", ... (names that
//     follow the rules keep theirs; the others are named in member order), so
//     no value overwrites another;
//   - an array that holds an object or an array becomes a string holding that
//     array's JSON text exactly as received (numbers, escapes and spacing
//     kept), so that the property has one type in every event and the
//     source's value can be read back whole.
//
// What follows the rules is copied byte for byte; conforming a conformed
// event changes nothing.

// MaxPropertyName is the longest property name, in bytes, that Conform lets
// through. Keen says "under 256 characters"; counting bytes is the strictest
// reading, so a name passes however Keen counts.
const MaxPropertyName = 255

// Rule is one of Keen's rules on properties.
type Rule uint8

// The rules, in the order a name is checked against them.
const (
	RuleEmptyName Rule = iota + 1
	RuleDollarName
	RuleDotName
	RuleLongName
	RuleNestedArray
)

func (r Rule) String() string {
	switch r {
	case RuleEmptyName:
		return "an empty property name"
	case RuleDollarName:
		return "a property name starting with '$'"
	case RuleDotName:
		return "a property name containing '.'"
	case RuleLongName:
		return "a property name of 256 bytes or more"
	case RuleNestedArray:
		return "an array holding objects or arrays"
	}
	return "rule " + strconv.Itoa(int(r))
}

// Change is one property that did not follow Keen's rules.
type Change struct {
	Rule Rule
	// Path is the property's path in the record, in the source's names.
	Path []string
	// NewPath is its path in the event (for a name, the last step is the
	// new name; for an array, the property now holds its JSON text).
	NewPath []string
}

// Renamed reports whether the change is a new name (else it is an array
// kept as JSON text).
func (c Change) Renamed() bool { return c.Rule != RuleNestedArray }

// String describes the change for logs: the property paths, never a value.
func (c Change) String() string {
	if c.Renamed() {
		return fmt.Sprintf("%s (%s) is now %s", FormatPath(c.Path), c.Rule, FormatKeenPath(c.NewPath))
	}
	return fmt.Sprintf("%s (%s) is now a string holding its JSON text", FormatKeenPath(c.NewPath), c.Rule)
}

// FormatPath writes a path of source names so that names holding '.' stay
// readable: as a JSON array of names, long ones cut in the middle.
func FormatPath(path []string) string {
	var b []byte
	b = append(b, '[')
	for i, p := range path {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonx.AppendQuoted(b, []byte(shortForLog(p)))
	}
	return string(append(b, ']'))
}

// FormatKeenPath writes a path of conformed names in Keen's dot notation, the
// way a property is named in Keen's queries and Explorer.
func FormatKeenPath(path []string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = shortForLog(p)
	}
	return strings.Join(parts, ".")
}

// shortForLog keeps a long name readable in a log: its first 40 and last 20
// bytes (whole characters), so that a shortened name's hash shows.
func shortForLog(s string) string {
	if len(s) <= 64 {
		return s
	}
	tail := len(s) - 20
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return cutRunes(s, 40) + "…" + s[tail:]
}

// NeedsConform reports whether data, whose validating pass noted traits
// (the keen member's left out), may break Keen's rules. No trait, no need.
func NeedsConform(tr jsonx.Traits) bool { return tr != 0 }

// Conform appends to dst the valid JSON object data made to follow Keen's
// property rules, its top-level keen member left as it is, and returns the
// changes. With no change, what it appended is data byte for byte.
func Conform(dst, data []byte) ([]byte, []Change) {
	c := conformer{dst: dst}
	c.object(data, true)
	return c.dst, c.changes
}

type conformer struct {
	dst          []byte
	changes      []Change
	path, newPth []string
}

// member is one member of an object being conformed.
type member struct {
	name    string // decoded
	newName string // "" when the name follows the rules
	m       jsonx.Member
	vstart  int // where the value starts in the object
}

// object conforms the object obj, keeping the bytes between its tokens.
func (c *conformer) object(obj []byte, top bool) {
	var ms []member
	jsonx.Members(obj, func(m *jsonx.Member) bool {
		ms = append(ms, member{name: m.Name(), m: *m, vstart: m.End - len(m.Value)})
		return true
	})
	c.rename(ms)
	prev := 0 // copied up to here
	for _, x := range ms {
		c.dst = append(c.dst, obj[prev:x.m.Start]...)
		if x.newName != "" {
			c.dst = jsonx.AppendQuoted(c.dst, []byte(x.newName))
		} else {
			c.dst = append(c.dst, x.m.Key...)
		}
		c.dst = append(c.dst, obj[x.m.Start+len(x.m.Key):x.vstart]...)
		if top && x.name == "keen" {
			c.dst = append(c.dst, x.m.Value...)
		} else {
			newName := x.name
			if x.newName != "" {
				newName = x.newName
			}
			c.path, c.newPth = append(c.path, x.name), append(c.newPth, newName)
			c.value(x.m.Value)
			c.path, c.newPth = c.path[:len(c.path)-1], c.newPth[:len(c.newPth)-1]
		}
		prev = x.m.End
	}
	c.dst = append(c.dst, obj[prev:]...)
}

// value conforms one property value.
func (c *conformer) value(v []byte) {
	switch jsonx.KindOf(v) {
	case jsonx.Object:
		c.object(v, false)
		return
	case jsonx.Array:
		nested := false
		jsonx.ElementsValid(v, func(e []byte) bool {
			k := jsonx.KindOf(e)
			nested = k == jsonx.Object || k == jsonx.Array
			return !nested
		})
		if nested {
			c.changes = append(c.changes, Change{Rule: RuleNestedArray, Path: clone(c.path), NewPath: clone(c.newPth)})
			c.dst = jsonx.AppendQuoted(c.dst, v)
			return
		}
	}
	c.dst = append(c.dst, v...)
}

// rename gives each member whose name breaks a rule a new name that no
// sibling has, in member order, after the names that follow the rules.
func (c *conformer) rename(ms []member) {
	var taken map[string]bool
	for i := range ms {
		if BrokenNameRule(ms[i].name) != 0 {
			if taken == nil {
				taken = make(map[string]bool, len(ms))
				for _, x := range ms {
					if BrokenNameRule(x.name) == 0 {
						taken[x.name] = true
					}
				}
			}
			ms[i].newName = freeName(FixName(ms[i].name), taken)
			taken[ms[i].newName] = true
			c.changes = append(c.changes, Change{
				Rule:    BrokenNameRule(ms[i].name),
				Path:    append(clone(c.path), ms[i].name),
				NewPath: append(clone(c.newPth), ms[i].newName),
			})
		}
	}
}

func clone(s []string) []string { return append([]string(nil), s...) }

// BrokenNameRule returns the first rule the property name breaks, or 0.
func BrokenNameRule(name string) Rule {
	switch {
	case name == "":
		return RuleEmptyName
	case name[0] == '$':
		return RuleDollarName
	case strings.IndexByte(name, '.') >= 0:
		return RuleDotName
	case len(name) > MaxPropertyName:
		return RuleLongName
	}
	return 0
}

// FixName returns the name made to follow Keen's rules (see the package
// rules above); a name that follows them is returned as it is.
func FixName(name string) string {
	if BrokenNameRule(name) == 0 {
		return name
	}
	if name == "" {
		return "_"
	}
	n := strings.ReplaceAll(name, ".", "_")
	if n[0] == '$' {
		n = "_" + n[1:]
	}
	if len(n) > MaxPropertyName {
		h := fnv.New32a()
		h.Write([]byte(name))
		suffix := fmt.Sprintf("_%08x", h.Sum32())
		n = cutRunes(n, MaxPropertyName-len(suffix)) + suffix
	}
	return n
}

// freeName returns name, or name with the first of "_2", "_3", ... that no
// sibling has, shortened so that it stays within MaxPropertyName.
func freeName(name string, taken map[string]bool) string {
	if !taken[name] {
		return name
	}
	for k := 2; ; k++ {
		suffix := "_" + strconv.Itoa(k)
		n := cutRunes(name, MaxPropertyName-len(suffix)) + suffix
		if !taken[n] {
			return n
		}
	}
}

// cutRunes returns the longest prefix of s of at most n bytes that ends on
// a character boundary.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
