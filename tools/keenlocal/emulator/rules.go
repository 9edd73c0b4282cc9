package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Keen's limits, as its documentation states them.
const (
	maxCollectionName = 64
	maxPropertyName   = 255 // "under 256 characters", counted in bytes, the strictest reading
	// maxUniquenessToken: "an opaque string of at most 64 characters".
	maxUniquenessToken = 64
)

var collectionChars = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// CheckCollection returns why Keen would refuse name as a collection (and a
// Kafka topic), or nil.
func CheckCollection(name string) error {
	switch {
	case name == "":
		return errors.New("collection name is empty")
	case len(name) > maxCollectionName:
		return fmt.Errorf("collection name is %d characters long, over %d", len(name), maxCollectionName)
	case !collectionChars.MatchString(name):
		return errors.New("collection name has a character outside A-Z a-z 0-9 . _ -")
	case strings.HasPrefix(name, "_"):
		return errors.New("collection name starts with _")
	case strings.HasPrefix(name, ".") || strings.HasSuffix(name, "."):
		return errors.New("collection name starts or ends with .")
	}
	return nil
}

// keenWritable are the keys a producer may set in the keen object; id and
// created_at are Keen's own, tolerated on input as Keen overwrites them.
var keenWritable = map[string]bool{
	"timestamp": true, "addons": true, "location": true, "uniqueness_token": true,
	"id": true, "created_at": true,
}

// isoTimestamp is ISO-8601 as Keen reads it: a date, optionally a time with
// optional seconds and fraction, optionally a zone.
var isoTimestamp = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2})(:\d{2}(?:\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?$`)

// ParseTimestamp reads an ISO-8601 timestamp; no zone means UTC.
func ParseTimestamp(s string) (time.Time, error) {
	m := isoTimestamp.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, errors.New("keen.timestamp is not ISO-8601")
	}
	// Normalise to RFC 3339 and let package time check the ranges.
	clock, secs, zone := m[2], m[3], m[4]
	if clock == "" {
		clock = "00:00"
	}
	if secs == "" {
		secs = ":00"
	}
	switch {
	case zone == "":
		zone = "Z"
	case len(zone) == 5: // +hhmm
		zone = zone[:3] + ":" + zone[3:]
	}
	t, err := time.Parse(time.RFC3339Nano, m[1]+"T"+clock+secs+zone)
	if err != nil {
		return time.Time{}, fmt.Errorf("keen.timestamp is not a valid time: %w", err)
	}
	return t.UTC(), nil
}

// CheckEvent decodes one Kafka message value as a Keen event and returns it,
// or the reason Keen would drop it.
//
// Besides Keen's stated rules it refuses two kinds of value whose fate in
// Keen no document states, so that nothing relies on it: a number outside
// the range of a double and an escape of a lone UTF-16 surrogate.
func CheckEvent(value []byte) (map[string]any, error) {
	if loneSurrogate(value) {
		return nil, errors.New("event holds a lone UTF-16 surrogate")
	}
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("event is not JSON: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("event has data after its JSON object")
	}
	ev, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("event is a JSON %s, not an object", kind(v))
	}
	// The keen object has rules of its own (keen.addons is an array of
	// objects, which Keen takes there and nowhere else).
	props := make(map[string]any, len(ev))
	for name, v := range ev {
		if name != "keen" {
			props[name] = v
		}
	}
	if err := checkObject(props, nil); err != nil {
		return nil, err
	}
	if k, present := ev["keen"]; present {
		ko, ok := k.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("keen is a JSON %s, not an object", kind(k))
		}
		for key := range ko {
			if !keenWritable[key] {
				return nil, fmt.Errorf("keen.%s is not a writable keen property", key)
			}
		}
		if tok, present := ko["uniqueness_token"]; present {
			s, ok := tok.(string)
			if !ok {
				return nil, fmt.Errorf("keen.uniqueness_token is a JSON %s, not a string", kind(tok))
			}
			if n := utf8.RuneCountInString(s); n > maxUniquenessToken {
				return nil, fmt.Errorf("keen.uniqueness_token is %d characters long, over %d", n, maxUniquenessToken)
			}
		}
		if ts, present := ko["timestamp"]; present {
			s, ok := ts.(string)
			if !ok {
				return nil, fmt.Errorf("keen.timestamp is a JSON %s, not a string", kind(ts))
			}
			if _, err := ParseTimestamp(s); err != nil {
				return nil, err
			}
		}
	}
	return ev, nil
}

// checkObject checks the properties of o, at path (the names above it; a
// slice that grows and shrinks as the walk goes, so that deep nesting costs
// no more than its depth: the dotted path is written only for an error).
func checkObject(o map[string]any, path []string) error {
	for name, v := range o {
		p := append(path, name)
		switch {
		case strings.Contains(name, "."):
			return fmt.Errorf("property %q contains a '.'", dotted(p))
		case strings.HasPrefix(name, "$"):
			return fmt.Errorf("property %q starts with '$'", dotted(p))
		case len(name) > maxPropertyName:
			return fmt.Errorf("property name of %d characters at %q is 256 or longer", len(name), dotted(path))
		case name == "":
			return fmt.Errorf("empty property name at %q", dotted(path))
		}
		if err := checkValue(v, p); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v any, path []string) error {
	switch x := v.(type) {
	case map[string]any:
		return checkObject(x, path)
	case []any:
		for i, e := range x {
			switch e.(type) {
			case map[string]any, []any:
				return fmt.Errorf("array %q holds a %s at index %d; arrays may hold only primitives", dotted(path), kind(e), i)
			}
			if err := checkValue(e, path); err != nil {
				return err
			}
		}
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("number at %q is outside the range of a double", dotted(path))
		}
	}
	return nil
}

// dotted writes a path of property names as Keen does, with dots.
func dotted(path []string) string { return strings.Join(path, ".") }

// loneSurrogate reports whether the JSON text b holds a \u escape of a
// surrogate that is not half of a pair. Backslashes appear in JSON only
// inside strings, each starting an escape.
func loneSurrogate(b []byte) bool {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		switch {
		case !ok:
			i++ // a two-byte escape
		case r >= 0xD800 && r < 0xDC00:
			if lo, ok := hex4(i + 6); ok && lo >= 0xDC00 && lo < 0xE000 {
				i += 11
				continue
			}
			return true
		case r >= 0xDC00 && r < 0xE000:
			return true
		default:
			i += 5
		}
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
