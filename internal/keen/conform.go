package keen

import (
	"bytes"
	"errors"
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
// Two more kinds of value are valid JSON whose fate in Keen no document
// states: a number outside the range of a double (1e400, which a double
// reader makes infinite, and infinity has no JSON form) and a string holding
// a \u escape of a lone UTF-16 surrogate (not Unicode: a UTF-8 store cannot
// hold it). Conform treats them as breaking a rule too. -0 and numbers that
// round to zero (1e-400) are numbers every reader takes; they pass.
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
//     source's value can be read back whole;
//   - a number outside the range of a double becomes a string holding its
//     text as received;
//   - each escape of a lone surrogate becomes \ufffd, the replacement
//     character (what Go's and JavaScript's decoders read it as), in values
//     and in names.
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
	RuleSurrogateName
	RuleNestedArray
	RuleNumberRange
	RuleSurrogateValue
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
	case RuleSurrogateName:
		return "a property name holding a lone UTF-16 surrogate"
	case RuleNestedArray:
		return "an array holding objects or arrays"
	case RuleNumberRange:
		return "a number outside the range of a double"
	case RuleSurrogateValue:
		return "a string holding a lone UTF-16 surrogate"
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

// Renamed reports whether the change is a new name (else it is a value:
// an array kept as JSON text, or a number or string made safe).
func (c Change) Renamed() bool { return c.Rule < RuleNestedArray }

// String describes the change for logs: the property paths, never a value.
func (c Change) String() string {
	switch c.Rule {
	case RuleNestedArray:
		return fmt.Sprintf("%s (%s) is now a string holding its JSON text", FormatKeenPath(c.NewPath), c.Rule)
	case RuleNumberRange:
		return fmt.Sprintf("%s (%s) is now a string holding the number's text", FormatKeenPath(c.NewPath), c.Rule)
	case RuleSurrogateValue:
		return fmt.Sprintf("%s (%s) now holds U+FFFD in its place", FormatKeenPath(c.NewPath), c.Rule)
	}
	return fmt.Sprintf("%s (%s) is now %s", FormatPath(c.Path), c.Rule, FormatKeenPath(c.NewPath))
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

// ConformedAtLeast returns a lower bound of the size of data conformed
// (with its top-level keen member left out, as AppendEvent may drop it):
// data less what renaming saves (names of 256 bytes or more are shortened,
// escapes written out), without conforming, in a pass that keeps nothing.
// A record whose bound is over Keen's limit is oversized whatever Conform
// would make of it, so the caller need not spend memory finding out.
func ConformedAtLeast(data []byte) int {
	n := len(data)
	jsonx.Members(data, func(m *jsonx.Member) bool {
		if jsonx.KeyIs(m.Key, "keen") {
			n -= m.End - m.Start
		}
		return true
	})
	return n - renameSavings(data)
}

// renameSavings returns how many bytes renaming saves at most in the
// object or array v and below.
func renameSavings(v []byte) int {
	saved := 0
	switch jsonx.KindOf(v) {
	case jsonx.Object:
		jsonx.Members(v, func(m *jsonx.Member) bool {
			if name := m.Name(); BrokenNameRule(name) != 0 || jsonx.HasLoneSurrogate(m.Key) {
				saved += max(0, len(m.Key)-2-len(FixName(name)))
			}
			saved += renameSavings(m.Value)
			return true
		})
	case jsonx.Array:
		jsonx.ElementsValid(v, func(e []byte) bool {
			saved += renameSavings(e)
			return true
		})
	}
	return saved
}

// Conform appends to dst the valid JSON object data made to follow Keen's
// property rules, its top-level keen member left as it is, and returns the
// changes. With no change, what it appended is data byte for byte.
func Conform(dst, data []byte) ([]byte, []Change) {
	c := conformer{dst: dst}
	c.object(data, true)
	return c.dst, c.changes
}

type conformer struct {
	dst           []byte
	changes       []Change
	path, newPath []string
}

// member is one member of an object being conformed.
type member struct {
	name    string // decoded (a lone surrogate decodes as U+FFFD)
	broken  Rule   // the first rule the name breaks, or 0
	newName string // "" when the name follows the rules
	m       jsonx.Member
	vstart  int // where the value starts in the object
}

// object conforms the object obj, keeping the bytes between its tokens.
func (c *conformer) object(obj []byte, top bool) {
	var ms []member
	jsonx.Members(obj, func(m *jsonx.Member) bool {
		x := member{name: m.Name(), m: *m, vstart: m.End - len(m.Value)}
		if x.broken = BrokenNameRule(x.name); x.broken == 0 && jsonx.HasLoneSurrogate(m.Key) {
			x.broken = RuleSurrogateName
		}
		ms = append(ms, x)
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
			c.path, c.newPath = append(c.path, x.name), append(c.newPath, newName)
			c.value(x.m.Value)
			c.path, c.newPath = c.path[:len(c.path)-1], c.newPath[:len(c.newPath)-1]
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
	case jsonx.Array:
		c.array(v)
	default:
		if r := c.primitive(v); r != 0 {
			c.note(r)
		}
	}
}

// array conforms an array: one holding an object or an array becomes its
// JSON text; in one of primitives each element is conformed, the bytes
// between them kept. Each rule broken is one change of the array's path.
func (c *conformer) array(v []byte) {
	nested := false
	jsonx.ElementsValid(v, func(e []byte) bool {
		k := jsonx.KindOf(e)
		nested = k == jsonx.Object || k == jsonx.Array
		return !nested
	})
	if nested {
		c.note(RuleNestedArray)
		c.dst = jsonx.AppendQuoted(c.dst, v)
		return
	}
	var noted [RuleSurrogateValue + 1]bool
	prev := 0 // copied up to here
	jsonx.ElementsValid(v, func(e []byte) bool {
		at := cap(v) - cap(e) // e is a slice of v
		c.dst = append(c.dst, v[prev:at]...)
		if r := c.primitive(e); r != 0 && !noted[r] {
			noted[r] = true
			c.note(r)
		}
		prev = at + len(e)
		return true
	})
	c.dst = append(c.dst, v[prev:]...)
}

// primitive appends the string, number or literal v, made safe, and
// returns the rule it broke, or 0.
func (c *conformer) primitive(v []byte) Rule {
	switch jsonx.KindOf(v) {
	case jsonx.String:
		if jsonx.HasLoneSurrogate(v) {
			c.dst = jsonx.AppendWithoutLoneSurrogates(c.dst, v)
			return RuleSurrogateValue
		}
	case jsonx.Number:
		if outOfRange(v) {
			c.dst = jsonx.AppendQuoted(c.dst, v)
			return RuleNumberRange
		}
	}
	c.dst = append(c.dst, v...)
	return 0
}

// outOfRange reports whether the valid JSON number v is beyond the largest
// double (rounding to zero is not: every reader takes that).
func outOfRange(v []byte) bool {
	if len(v) < 309 && bytes.IndexAny(v, "eE") < 0 {
		return false // under 1e308 without an exponent
	}
	_, err := strconv.ParseFloat(string(v), 64)
	return errors.Is(err, strconv.ErrRange)
}

// note records a change of the value at the current path.
func (c *conformer) note(r Rule) {
	c.changes = append(c.changes, Change{Rule: r, Path: clone(c.path), NewPath: clone(c.newPath)})
}

// rename gives each member whose name breaks a rule a new name that no
// sibling has, in member order, after the names that follow the rules.
func (c *conformer) rename(ms []member) {
	var taken map[string]bool
	for i := range ms {
		if ms[i].broken != 0 {
			if taken == nil {
				taken = make(map[string]bool, len(ms))
				for _, x := range ms {
					if x.broken == 0 {
						taken[x.name] = true
					}
				}
			}
			ms[i].newName = freeName(FixName(ms[i].name), taken)
			taken[ms[i].newName] = true
			c.changes = append(c.changes, Change{
				Rule:    ms[i].broken,
				Path:    append(clone(c.path), ms[i].name),
				NewPath: append(clone(c.newPath), ms[i].newName),
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
