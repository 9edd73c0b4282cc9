package message

import (
	"errors"
	"fmt"

	"destination-keen/internal/jsonx"
)

// MaxLine bounds the line the reader holds in memory: 4 MiB, four times
// Keen's event limit (1,000,000 bytes). A record's event holds its data byte
// for byte, so a line longer than that makes an event over the limit
// whatever it holds (short of megabytes of property names of 256 bytes or
// more, which are shortened, or of source keen properties, which are
// dropped). Such a line is read through without being held (see LongLine),
// so that a record of any size meets the oversized policy in bounded memory.
const MaxLine = 4 << 20

// MaxLongLine bounds a line read through: one that long is no record any
// source means to send (an endless stream of bytes, a lost newline), and
// the sync stops with an error rather than read on forever.
const MaxLongLine = 1 << 30

// LongLine is returned by Reader.Next, as the error, for a line over
// MaxLine bytes: what the connector needs to know of its message, found by
// a structural scan of the whole line (strings, escapes and nesting; the
// values are not checked further).
type LongLine struct {
	Line  int
	Bytes int64
	// Type is the message's type, Stream and Namespace the record's; each ""
	// when the line does not hold it as a string (or holds it over 1 KiB).
	Type, Stream, Namespace string
	// Err says why the line is not one JSON object, or is nil.
	Err error
}

func (l *LongLine) Error() string {
	if l.Err != nil {
		return fmt.Sprintf("line %d of %d bytes: %v", l.Line, l.Bytes, l.Err)
	}
	return fmt.Sprintf("line %d of %d bytes, over %d MiB", l.Line, l.Bytes, MaxLine>>20)
}

// maxCaptured bounds a string the skim keeps: a key, a type, a stream name.
const maxCaptured = 1 << 10

// skim scans a JSON object fed in pieces and keeps its top-level "type"
// and its record's "stream" and "namespace", in constant memory.
type skim struct {
	total, n               int64 // bytes fed; bytes scanned
	depth                  int
	started, done          bool
	inStr, esc             bool
	str                    []byte // the string being read, up to maxCaptured
	strLong                bool
	afterColon             bool
	last                   string // the last string read that was not a value: a key
	key1, key2             string // the current key at depth 1 and 2
	typ, stream, namespace string
	err                    error
}

func (s *skim) feed(p []byte) {
	s.total += int64(len(p))
	for _, c := range p {
		if s.err != nil {
			return
		}
		s.n++
		if s.inStr {
			switch {
			case s.esc:
				s.esc = false
			case c == '\\':
				s.esc = true
			case c == '"':
				s.inStr = false
				s.endString()
				continue
			}
			if len(s.str) < maxCaptured {
				s.str = append(s.str, c)
			} else {
				s.strLong = true
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		if s.done {
			s.fail("data after the JSON object")
			return
		}
		if !s.started {
			if c != '{' {
				s.fail("not a JSON object")
				return
			}
			s.started = true
		}
		switch c {
		case '"':
			s.inStr, s.str, s.strLong = true, s.str[:0], false
		case '{', '[':
			if s.depth >= jsonx.MaxDepth {
				s.fail("JSON nested too deeply")
				return
			}
			s.depth++
			s.afterColon = false
		case '}', ']':
			s.depth--
			s.afterColon = false
			if s.depth == 0 {
				s.done = true
			}
		case ':':
			s.afterColon = true
			switch s.depth {
			case 1:
				s.key1, s.key2 = s.last, ""
			case 2:
				s.key2 = s.last
			}
		case ',':
			s.afterColon = false
		}
	}
}

// endString takes a string that just closed: a value of the current key,
// or a key. Only the strings that can matter are unquoted (keys at depth 1
// and 2, the three values kept): a long line's others cost nothing.
func (s *skim) endString() {
	value := s.afterColon
	s.afterColon = false
	var into *string
	switch {
	case !value && s.depth <= 2:
		into = &s.last
	case !value:
		return // a key below the record's members: never looked at
	case s.depth == 1 && s.key1 == "type":
		into = &s.typ
	case s.depth == 2 && s.key1 == "record" && s.key2 == "stream":
		into = &s.stream
	case s.depth == 2 && s.key1 == "record" && s.key2 == "namespace":
		into = &s.namespace
	default:
		return
	}
	*into = ""
	if !s.strLong {
		quoted := make([]byte, 0, len(s.str)+2)
		quoted = append(append(append(quoted, '"'), s.str...), '"')
		*into, _ = jsonx.Unquote(quoted)
	}
}

func (s *skim) fail(msg string) { s.err = fmt.Errorf("%s at byte %d", msg, s.n-1) }

// result is what the skim found in the whole line (its line ending fed or
// not).
func (s *skim) result(line int) *LongLine {
	l := &LongLine{Line: line, Bytes: s.total, Type: s.typ, Stream: s.stream, Namespace: s.namespace, Err: s.err}
	if l.Err == nil && (!s.done || s.inStr) {
		l.Err = errors.New("unexpected end of JSON")
	}
	return l
}
