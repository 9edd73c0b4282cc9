// Package jsonx is the connector's hot-path JSON scanner: it validates a JSON
// text and finds the byte ranges of object members without decoding values
// into Go types, so that records and states pass through byte for byte
// (large integers stay exact) and the per-record cost stays a single pass.
// It owns syntax only; what the members mean is for its callers.
package jsonx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxDepth bounds nesting, so that a hostile document cannot exhaust the
// stack; the encoding/json decoder uses the same bound.
const MaxDepth = 10000

// SyntaxError says where a text stops being JSON. It never quotes the text.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.Msg, e.Offset) }

func errAt(i int, msg string) error { return &SyntaxError{Offset: i, Msg: msg} }

// Kind is the type of a JSON value, from its first byte.
type Kind byte

// Kinds of JSON values.
const (
	Invalid Kind = iota
	Object
	Array
	String
	Number
	True
	False
	Null
)

func (k Kind) String() string {
	return [...]string{"invalid", "object", "array", "string", "number", "true", "false", "null"}[k]
}

// KindOf returns the kind of the value starting at b[0] (no white space).
func KindOf(b []byte) Kind {
	if len(b) == 0 {
		return Invalid
	}
	switch c := b[0]; {
	case c == '{':
		return Object
	case c == '[':
		return Array
	case c == '"':
		return String
	case c == '-' || (c >= '0' && c <= '9'):
		return Number
	case c == 't':
		return True
	case c == 'f':
		return False
	case c == 'n':
		return Null
	}
	return Invalid
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// TrimSpace returns b without leading and trailing JSON white space.
func TrimSpace(b []byte) []byte {
	i := skipSpace(b, 0)
	j := len(b)
	for j > i {
		switch b[j-1] {
		case ' ', '\t', '\n', '\r':
			j--
			continue
		}
		break
	}
	return b[i:j]
}

// Valid reports whether b is exactly one JSON value (white space around it
// allowed) with valid UTF-8 strings, or returns where it is not.
func Valid(b []byte) error {
	i := skipSpace(b, 0)
	end, err := skipValue(b, i, 0, nil)
	if err != nil {
		return err
	}
	if j := skipSpace(b, end); j != len(b) {
		return errAt(j, "data after the JSON value")
	}
	return nil
}

// SkipValue validates the value starting at b[i] and returns the index just
// past it.
func SkipValue(b []byte, i int) (int, error) { return skipValue(b, i, 0, nil) }

// SkipValueIn is SkipValue for a value nested depth levels deep, so that
// MaxDepth counts from the document that holds it, noting the traits of
// what it validates in tr (when not nil).
func SkipValueIn(b []byte, i, depth int, tr *Traits) (int, error) {
	return skipValue(b, i, depth, tr)
}

// Traits are facts about the keys and arrays of a document that validation
// notes on the way at almost no cost, for callers whose target store
// restricts them (Keen, like MongoDB, refuses '.' and a leading '$' in
// property names, and arrays of objects). They may err on the side of
// noting: a caller that sees a trait looks closer; one that sees none need
// not look at all.
type Traits uint8

// Traits of a document.
const (
	// OddKey: a key that is empty, starts with '$', holds a '.' or an
	// escape, or is LongKey bytes or longer.
	OddKey Traits = 1 << iota
	// NestedArray: an array that holds an object or an array.
	NestedArray
	// OddNumber: a number with an exponent or over 308 digits before its
	// point, which may be outside the range of a double.
	OddNumber
	// LoneSurrogate: a string value holding a \u escape of a UTF-16
	// surrogate that is not half of a pair (valid JSON, not Unicode). Keys
	// holding one are OddKey, as every key with an escape is.
	LoneSurrogate
)

// LongKey is the length, in bytes between the quotes, from which a key is
// odd.
const LongKey = 256

// keyTraits returns the traits of the key b[kstart:kend] (quotes included);
// odd is what scanString noted (an escape or a '.').
func keyTraits(b []byte, kstart, kend int, odd bool) Traits {
	if odd || kend-kstart == 2 || b[kstart+1] == '$' || kend-kstart-2 >= LongKey {
		return OddKey
	}
	return 0
}

func skipValue(b []byte, i, depth int, tr *Traits) (int, error) {
	if i >= len(b) {
		return i, errAt(i, "unexpected end of JSON")
	}
	switch c := b[i]; {
	case c == '{':
		if depth >= MaxDepth {
			return i, errAt(i, "JSON nested too deeply")
		}
		return skipObject(b, i, depth+1, tr)
	case c == '[':
		if depth >= MaxDepth {
			return i, errAt(i, "JSON nested too deeply")
		}
		return skipArray(b, i, depth+1, tr)
	case c == '"':
		end, f, err := scanString(b, i)
		if tr != nil && f&lone != 0 {
			*tr |= LoneSurrogate
		}
		return end, err
	case c == '-' || (c >= '0' && c <= '9'):
		end, odd, err := scanNumber(b, i)
		if tr != nil && odd {
			*tr |= OddNumber
		}
		return end, err
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return i, errAt(i, "invalid character")
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, errAt(i, "invalid literal")
	}
	return i + len(lit), nil
}

func skipObject(b []byte, i, depth int, tr *Traits) (int, error) {
	return walkObject(b, i, tr, func(_, _, v int) (int, error) { return skipValue(b, v, depth, tr) })
}

// walkObject validates the object at b[i], calling fn for each member with
// the bounds of its key (quotes included) and the index where its value
// starts; fn consumes the value and returns the index past it. It returns the
// index past the object, and notes the keys' traits in tr (when not nil).
// Every object walk in this package is this one.
func walkObject(b []byte, i int, tr *Traits, fn func(kstart, kend, v int) (int, error)) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return i, ErrNotObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, errAt(i, "object key expected")
		}
		kstart := i
		end, f, err := scanKey(b, i)
		if err != nil {
			return end, err
		}
		if tr != nil {
			*tr |= keyTraits(b, kstart, end, f != 0)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, errAt(i, "':' expected after object key")
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return i, errAt(i, "unexpected end of JSON")
		}
		if i, err = fn(kstart, end, i); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, errAt(i, "unexpected end of JSON in object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, errAt(i, "',' or '}' expected in object")
		}
	}
}

func skipArray(b []byte, i, depth int, tr *Traits) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		if tr != nil && i < len(b) && (b[i] == '{' || b[i] == '[') {
			*tr |= NestedArray
		}
		var err error
		if i, err = skipValue(b, i, depth, tr); err != nil {
			return i, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return i, errAt(i, "unexpected end of JSON in array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, errAt(i, "',' or ']' expected in array")
		}
	}
}

// plain marks the string bytes that need no attention: printable ASCII
// other than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainKey is plain for keys: a '.' in a key is worth noting.
var plainKey = func() (t [256]bool) {
	t = plain
	t['.'] = false
	return t
}()

// strFlags are what a string scan notes.
type strFlags uint8

const (
	// odd: an escape, or an ASCII byte that is not plain in the table.
	odd strFlags = 1 << iota
	// lone: a \u escape of a surrogate that is not half of a pair.
	lone
)

// scanString validates the string starting at b[i] (the quote) and returns
// the index past its closing quote and whether it holds escapes (odd) and
// lone surrogates.
func scanString(b []byte, i int) (end int, f strFlags, err error) {
	j := i + 1
	for j+8 <= len(b) && plain[b[j]] && plain[b[j+1]] && plain[b[j+2]] && plain[b[j+3]] &&
		plain[b[j+4]] && plain[b[j+5]] && plain[b[j+6]] && plain[b[j+7]] {
		j += 8
	}
	for j < len(b) && plain[b[j]] {
		j++
	}
	if j < len(b) && b[j] == '"' {
		return j + 1, 0, nil // the common case: plain ASCII
	}
	return scanStringFrom(b, i, j, &plain)
}

// scanKey is scanString for a key, where a '.' is noted as odd as an
// escape is.
func scanKey(b []byte, i int) (end int, f strFlags, err error) {
	j := i + 1
	for j+8 <= len(b) && plainKey[b[j]] && plainKey[b[j+1]] && plainKey[b[j+2]] && plainKey[b[j+3]] &&
		plainKey[b[j+4]] && plainKey[b[j+5]] && plainKey[b[j+6]] && plainKey[b[j+7]] {
		j += 8
	}
	for j < len(b) && plainKey[b[j]] {
		j++
	}
	if j < len(b) && b[j] == '"' {
		return j + 1, 0, nil
	}
	return scanStringFrom(b, i, j, &plainKey)
}

// scanStringFrom goes on validating the string that starts at b[start]
// from b[i], and notes an escape or an ASCII byte that is not plain in the
// table (odd) and a lone surrogate.
func scanStringFrom(b []byte, start, i int, plain *[256]bool) (end int, f strFlags, err error) {
	for {
		// Runs of plain ASCII, eight bytes per check where there is room.
		for i+8 <= len(b) && plain[b[i]] && plain[b[i+1]] && plain[b[i+2]] && plain[b[i+3]] &&
			plain[b[i+4]] && plain[b[i+5]] && plain[b[i+6]] && plain[b[i+7]] {
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, f, errAt(start, "unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, f, nil
		case c == '\\':
			f |= odd
			if i+1 >= len(b) {
				return i, f, errAt(i, "unexpected end of JSON in string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex4(b[i+2:i+6]) {
					return i, f, errAt(i, "invalid \\u escape in string")
				}
				switch {
				case b[i+2]|0x20 != 'd' || b[i+3] < '8': // not U+D800-U+DFFF
					i += 6
				case surrogatePair(b[i:]):
					i += 12
				default:
					f |= lone
					i += 6
				}
			default:
				return i, f, errAt(i, "invalid escape in string")
			}
		case c < 0x20:
			return i, f, errAt(i, "control character in string")
		case c < utf8.RuneSelf:
			f |= odd // not plain in this table
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, f, errAt(i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
}

// surrogatePair reports whether b, which starts with the \u escape of a
// surrogate, starts with a high surrogate followed by the \u escape of a
// low one.
func surrogatePair(b []byte) bool {
	high := b[3]|0x20 < 'c' // D8-DB: '8', '9', 'a', 'b'
	return high && len(b) >= 12 && b[6] == '\\' && b[7] == 'u' && isHex4(b[8:12]) &&
		b[8]|0x20 == 'd' && b[9]|0x20 >= 'c' && b[9]|0x20 <= 'f'
}

// HasLoneSurrogate reports whether the valid JSON string quoted holds a
// \u escape of a UTF-16 surrogate that is not half of a pair.
func HasLoneSurrogate(quoted []byte) bool {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return false
	}
	_, f, _ := scanStringFrom(quoted, 0, 1, &plain)
	return f&lone != 0
}

// AppendWithoutLoneSurrogates appends the valid JSON string quoted to dst
// with each escape of a lone surrogate replaced by \ufffd (U+FFFD, the
// replacement character, which is what decoders such as Go's and
// JavaScript's read it as), every other byte as it is.
func AppendWithoutLoneSurrogates(dst, quoted []byte) []byte {
	prev := 0
	for i := 1; i < len(quoted)-1; i++ {
		if quoted[i] != '\\' {
			continue
		}
		if quoted[i+1] != 'u' {
			i++ // a two-byte escape: its second byte is not a backslash
			continue
		}
		e := quoted[i:]
		switch {
		case e[2]|0x20 != 'd' || e[3] < '8':
		case surrogatePair(e):
			i += 6
		default:
			dst = append(dst, quoted[prev:i]...)
			dst = append(dst, `\ufffd`...)
			prev = i + 6
		}
		i += 5
	}
	return append(dst, quoted[prev:]...)
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// scanNumber validates the number at b[i] and returns the index past it
// and whether it may be outside the range of a double (odd): it has an
// exponent or more than 308 digits before its point.
func scanNumber(b []byte, i int) (end int, odd bool, err error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if n := digits(); n == 0 {
		return i, false, errAt(start, "invalid number")
	} else if n > 308 {
		odd = true
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return i, odd, errAt(start, "invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		odd = true
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, odd, errAt(start, "invalid number")
		}
	}
	return i, odd, nil
}

// Member is one member of an object: the raw key (with its quotes) and the
// raw value, as sub-slices of the scanned text.
type Member struct {
	Key, Value []byte
	// Start and End bound the whole member (key to value) in the object.
	Start, End int
	// Traits of the key and the value, when the walk noted them.
	Traits Traits
}

// Name returns the member's key unquoted. It allocates only when the key
// holds escapes.
func (m *Member) Name() string {
	k := m.Key
	s, err := Unquote(k)
	if err != nil {
		return string(k[1 : len(k)-1])
	}
	return s
}

func hasEscape(quoted []byte) bool {
	for _, c := range quoted[1 : len(quoted)-1] {
		if c == '\\' {
			return true
		}
	}
	return false
}

// Walk validates the object starting at b[i] and calls fn for each member
// with its key (quotes included) and the index where its value starts. fn
// must consume the value, validating it (with SkipValueIn, or a nested
// Walk), and return the index just past it. Walk returns the index past the
// object and notes its keys' traits in tr (when not nil; fn notes those of
// the values). It lets a caller validate a document and pick what it needs
// from it in one pass: it is the package's one validating object walk.
func Walk(b []byte, i int, tr *Traits, fn func(key []byte, v int) (int, error)) (int, error) {
	return walkObject(b, i, tr, func(kstart, kend, v int) (int, error) { return fn(b[kstart:kend], v) })
}

// KeyIs reports whether the quoted key equals name.
func KeyIs(key []byte, name string) bool {
	if len(key) == len(name)+2 && string(key[1:len(key)-1]) == name {
		return true
	}
	if !hasEscape(key) {
		return false
	}
	s, err := Unquote(key)
	return err == nil && s == name
}

// ErrNotObject is returned for a value that is not an object.
var ErrNotObject = errors.New("not a JSON object")

// Unquote returns the string value of the JSON string s (with quotes).
// Strings with escapes, rare in practice, go through encoding/json.
func Unquote(s []byte) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", errors.New("not a JSON string")
	}
	if !hasEscape(s) {
		return string(s[1 : len(s)-1]), nil
	}
	var out string
	if err := json.Unmarshal(s, &out); err != nil {
		return "", fmt.Errorf("invalid JSON string: %w", err)
	}
	return out, nil
}

// Members calls fn for each member of the object b, already validated (by
// Valid, SkipValue or Walk), in order, until fn returns false. It only
// finds the members' bounds, several times faster than validating. On input
// that is not valid JSON its results are meaningless but it stays within b.
func Members(b []byte, fn func(m *Member) bool) {
	if len(b) == 0 || b[0] != '{' {
		return
	}
	var m Member
	i := skipSpace(b, 1)
	for i < len(b) && b[i] == '"' {
		kstart := i
		i = endOfString(b, i)
		m.Key = b[kstart:i]
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return
		}
		i = skipSpace(b, i+1)
		vstart := i
		i = skipTrusted(b, i)
		m.Value = b[vstart:i]
		m.Start, m.End = kstart, i
		if !fn(&m) {
			return
		}
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i = skipSpace(b, i+1)
	}
}

// Lookup returns the raw value at path (member names) in the valid object
// obj, or nil when a step is missing or not an object. The last member of a
// name wins, as in encoding/json.
func Lookup(obj []byte, path ...string) []byte {
	cur := obj
	for _, name := range path {
		if KindOf(cur) != Object {
			return nil
		}
		var found []byte
		Members(cur, func(m *Member) bool {
			if KeyIs(m.Key, name) {
				found = m.Value
			}
			return true
		})
		if found == nil {
			return nil
		}
		cur = found
	}
	return cur
}

// AppendWithout appends the valid object obj to dst without its members
// named name and without its closing brace, followed by a comma when any
// member was written: the caller appends its own member and the brace. It
// returns the value of the last member named name (nil when none).
func AppendWithout(dst, obj []byte, name string) (out, value []byte) {
	dst = append(dst, '{')
	first := true
	Members(obj, func(m *Member) bool {
		if KeyIs(m.Key, name) {
			value = m.Value
			return true
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, obj[m.Start:m.End]...)
		return true
	})
	if !first {
		dst = append(dst, ',')
	}
	return dst, value
}

// endOfString returns the index past the closing quote of the string at
// b[i], for valid input.
func endOfString(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for k := i - 1; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
}

// structural marks the bytes skipTrusted stops at inside a container.
var structural = func() (t [256]bool) {
	for _, c := range `"{}[]` {
		t[c] = true
	}
	return t
}()

// skipTrusted returns the index past the valid value at b[i].
func skipTrusted(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			for i < len(b) && !structural[b[i]] {
				i++
			}
			if i >= len(b) {
				return i
			}
			switch b[i] {
			case '"':
				i = endOfString(b, i)
				continue
			case '{', '[':
				depth++
			default:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// ElementsValid calls fn with each element of the valid array b (no
// surrounding white space), in order, until fn returns false.
func ElementsValid(b []byte, fn func(v []byte) bool) {
	if len(b) == 0 || b[0] != '[' {
		return
	}
	i := skipSpace(b, 1)
	for i < len(b) && b[i] != ']' {
		start := i
		i = skipTrusted(b, i)
		if !fn(b[start:i]) {
			return
		}
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return
		}
		i = skipSpace(b, i+1)
	}
}

// AppendQuoted appends s to dst as a JSON string. Only what JSON requires is
// escaped (the quote, the backslash and control characters), so that text
// quoted this way reads back byte for byte; s must be valid UTF-8.
func AppendQuoted(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
