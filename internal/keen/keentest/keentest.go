// Package keentest holds what tests of the connector's Keen rules share: an
// oracle, written with encoding/json alone, for the values a record holds,
// so that a test can check that an event kept every one of them. It is
// imported by tests only.
package keentest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Leaves lists the primitive values of the JSON document doc outside its
// top-level keen members, sorted: strings as "s:value", numbers as
// "n:literal", true, false and null as they are. An array that holds an
// object or an array counts as one string, its raw text, and so does a
// number outside the range of a double: that is what Keen is sent for them.
// A lone surrogate reads as U+FFFD, as encoding/json decodes it.
func Leaves(doc []byte) ([]string, error) {
	out, err := leaves(doc, true)
	slices.Sort(out)
	return out, err
}

func leaves(doc []byte, top bool) ([]string, error) {
	doc = bytes.TrimSpace(doc)
	switch {
	case len(doc) == 0:
		return nil, errors.New("empty value")
	case doc[0] == '{':
		var out []string
		d := json.NewDecoder(bytes.NewReader(doc))
		d.UseNumber()
		if _, err := d.Token(); err != nil {
			return nil, err
		}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return nil, err
			}
			var v json.RawMessage
			if err := d.Decode(&v); err != nil {
				return nil, err
			}
			if top && k == "keen" {
				continue
			}
			ls, err := leaves(v, false)
			if err != nil {
				return nil, err
			}
			out = append(out, ls...)
		}
		if _, err := d.Token(); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return out, nil
	case doc[0] == '[':
		var els []json.RawMessage
		if err := json.Unmarshal(doc, &els); err != nil {
			return nil, err
		}
		var out []string
		for _, e := range els {
			if e[0] == '{' || e[0] == '[' {
				return []string{"s:" + string(doc)}, nil
			}
			ls, err := leaves(e, false)
			if err != nil {
				return nil, err
			}
			out = append(out, ls...)
		}
		return out, nil
	case doc[0] == '"':
		var s string
		if err := json.Unmarshal(doc, &s); err != nil {
			return nil, err
		}
		return []string{"s:" + s}, nil
	case doc[0] == 't' || doc[0] == 'f' || doc[0] == 'n':
		return []string{string(doc)}, nil
	case doc[0] == '-' || (doc[0] >= '0' && doc[0] <= '9'):
		if _, err := strconv.ParseFloat(string(doc), 64); errors.Is(err, strconv.ErrRange) {
			return []string{"s:" + string(doc)}, nil // sent as its text
		}
		return []string{"n:" + string(doc)}, nil
	}
	return nil, fmt.Errorf("not a JSON value at %q", doc[:1])
}
