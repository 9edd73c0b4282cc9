// Package keen owns Keen's rules as the connector applies them: how a stream
// name becomes a collection name, how a cursor value becomes keen.timestamp,
// and how a record's data becomes one event (the keen object merged in,
// everything else byte for byte). It does no I/O.
package keen

import (
	"errors"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// MaxCollectionLen is Keen's limit on collection names.
const MaxCollectionLen = 64

// ErrEmptyCollection means nothing of a stream name survives Keen's rules.
var ErrEmptyCollection = errors.New("no character of the stream name is allowed in a Keen collection name")

// CollectionName turns a stream name into a collection (and Kafka topic)
// name that Keen and Kafka both accept: accents stripped (NFD, non-spacing
// marks dropped), each white-space character turned into '_', every other
// character outside A-Z a-z 0-9 . _ - dropped, leading '_' and leading or
// trailing '.' trimmed, cut to 64 characters.
func CollectionName(stream string) (string, error) {
	var b strings.Builder
	b.Grow(len(stream))
	for _, r := range norm.NFD.String(stream) {
		switch {
		case r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'):
			b.WriteRune(r)
		case unicode.IsSpace(r):
			b.WriteByte('_')
		}
		// Everything else, non-spacing marks included, is dropped.
	}
	name := b.String()
	for {
		trimmed := strings.TrimLeft(name, "_.")
		trimmed = strings.TrimRight(trimmed, ".")
		if len(trimmed) > MaxCollectionLen {
			trimmed = trimmed[:MaxCollectionLen]
		}
		if trimmed == name {
			break
		}
		name = trimmed // cutting may leave a trailing '.', so go round again
	}
	if name == "" {
		return "", ErrEmptyCollection
	}
	return name, nil
}
