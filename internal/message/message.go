// Package message reads the Airbyte messages a destination receives on
// stdin, on the hot path: one line at a time, of any length, decoded by the
// jsonx scanner into byte ranges of the line (record data and state blobs are
// never re-encoded). It checks what the write path relies on and says what is
// wrong without quoting the line, which may hold personal data.
package message

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"destination-keen/gen/protocol"
	"destination-keen/internal/jsonx"
	"destination-keen/schemas"
)

// Type is a message's type.
type Type int

// Types the write path tells apart.
const (
	Other   Type = iota // LOG, TRACE, CONTROL and the like: accepted, not acted on
	Record              // RECORD
	State               // STATE
	Unknown             // a type the protocol schema does not list: skipped
)

// knownTypes are the message types of the protocol schema (the generated
// list, so that a type a new release adds is known after regenerating).
var knownTypes = func() map[string]Type {
	m := map[string]Type{}
	for _, t := range protocol.AirbyteMessageTypeValues {
		m[string(t)] = Other
	}
	m[string(protocol.AirbyteMessageTypeRECORD)] = Record
	m[string(protocol.AirbyteMessageTypeSTATE)] = State
	return m
}()

// Message is one decoded line. Its slices point into the line.
type Message struct {
	Type     Type
	TypeName string // the protocol type
	// RECORD
	Stream    []byte // the stream name, unquoted
	Namespace []byte // nil when absent or null
	Data      []byte // the record's data object
	EmittedAt int64  // epoch milliseconds
	// Members are data's members, in order, each with the traits of its key
	// and value, found while data was validated: whoever needs a top-level
	// member takes it from here instead of reading data again. Data of more
	// than MaxMembers members keeps none (nil), so that memory does not grow
	// with a record's width; whoever needs them finds them in Data, and
	// Traits holds the traits of them all.
	Members []jsonx.Member
	Traits  jsonx.Traits
	// STATE
	Line  []byte // the whole line
	State []byte // the state object
	// StateAt is where State is in Line with its white space around
	// trimmed, for WithDestinationStats.
	StateAt [2]int
	// StateKind is the state's kind; StateStream and StateNamespace name
	// the stream of a STREAM state.
	StateKind                   StateKind
	StateStream, StateNamespace string
	state                       stateParts // what the decoding pass picked of the state
	// TRACE
	Trace []byte // the trace object, as it came; nil for other types
}

// Error is bad input: what is wrong with a line, never its content.
type Error struct {
	Line   int    // 1-based line number
	Stream string // the record's stream, when known
	// Namespace is the record's namespace, when known.
	Namespace string
	Reason    string
}

func (e *Error) Error() string {
	if e.Stream != "" {
		return fmt.Sprintf("line %d (stream %q): %s", e.Line, e.Stream, e.Reason)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
}

// recordParts are the raw members of a record, checked after the walk.
type recordParts struct {
	seen, object              bool
	stream, ns, emitted, data []byte
}

// Decode decodes line (no trailing newline) into m, in one validating pass,
// reusing m's Members. Errors are *Error with the line number left zero for
// the caller to fill in.
func Decode(line []byte, m *Message) error {
	if cap(m.Members) > MaxMembers {
		m.Members = nil
	}
	*m = Message{Line: line, Members: m.Members[:0]}
	line = jsonx.TrimSpace(line)
	if jsonx.KindOf(line) != jsonx.Object {
		if jsonx.Valid(line) == nil {
			return &Error{Reason: fmt.Sprintf("the message is a JSON %s, not an object", jsonx.KindOf(line))}
		}
		return &Error{Reason: "the line is not JSON"}
	}
	var typ, state, trace []byte
	var rp recordParts
	sp := &m.state // in m, which outlives the call: no allocation per line
	end, err := jsonx.Walk(line, 0, nil, func(key []byte, v int) (int, error) {
		var e int
		var err error
		switch {
		case jsonx.KeyIs(key, "type"):
			e, err = jsonx.SkipValue(line, v)
			typ = line[v:e]
		case jsonx.KeyIs(key, "state"):
			e, err = walkState(line, v, sp)
			state = line[v:e]
			m.StateAt = [2]int{v, e}
		case jsonx.KeyIs(key, "trace"):
			e, err = jsonx.SkipValue(line, v)
			trace = line[v:e]
		case jsonx.KeyIs(key, "record"):
			rp = recordParts{seen: true} // the last record wins
			m.Members = m.Members[:0]
			e, err = walkRecord(line, v, m, &rp)
		default:
			e, err = jsonx.SkipValue(line, v)
		}
		return e, err
	})
	if err == nil && end != len(line) {
		err = errors.New("data after the JSON object")
	}
	if err != nil {
		return &Error{Reason: "the line is not valid JSON: " + err.Error()}
	}
	if typ == nil {
		return &Error{Reason: "the message has no type"}
	}
	name, err := jsonx.Unquote(typ)
	if err != nil {
		return &Error{Reason: "the message type is not a string"}
	}
	t, ok := knownTypes[name]
	if !ok {
		upper := strings.ToUpper(strings.TrimSpace(name))
		if _, known := knownTypes[upper]; known {
			// A known type written otherwise is a mistake, not a type of a
			// later release: skipping it would lose the line in silence.
			return &Error{Reason: fmt.Sprintf("the message type %.40q is not one of the protocol's: types are written in capitals, without spaces (%s)", name, upper)}
		}
		// A later release's type: the Java CDK skipped such lines too.
		m.Type, m.TypeName = Unknown, name
		return nil
	}
	m.Type, m.TypeName = t, name
	if name == string(protocol.AirbyteMessageTypeTRACE) && jsonx.KindOf(trace) == jsonx.Object {
		m.Trace = trace
	}
	switch t {
	case Record:
		return checkRecord(&rp, m)
	case State:
		if jsonx.KindOf(state) != jsonx.Object {
			if state == nil {
				return &Error{Reason: "the STATE message has no state"}
			}
			return &Error{Reason: fmt.Sprintf("the state is a JSON %s, not an object", jsonx.KindOf(state))}
		}
		m.State = state
		if err := sp.describe(m); err != nil {
			return &Error{Reason: err.Error()}
		}
	}
	return nil
}

// walkRecord validates the record value at b[v] and picks its members; the
// data object is walked here too, so that the line is read once.
func walkRecord(b []byte, v int, m *Message, rp *recordParts) (int, error) {
	if b[v] != '{' {
		return jsonx.SkipValue(b, v)
	}
	rp.object = true
	return jsonx.Walk(b, v, nil, func(key []byte, v int) (int, error) {
		switch {
		case jsonx.KeyIs(key, "data"):
			// The last data wins, as in encoding/json: forget what an
			// earlier one held.
			m.Members = m.Members[:0]
			if b[v] != '{' {
				e, err := jsonx.SkipValue(b, v)
				rp.data = b[v:e]
				return e, err
			}
			e, err := walkData(b, v, m)
			rp.data = b[v:e]
			return e, err
		case jsonx.KeyIs(key, "stream"):
			e, err := jsonx.SkipValue(b, v)
			rp.stream = b[v:e]
			return e, err
		case jsonx.KeyIs(key, "namespace"):
			e, err := jsonx.SkipValue(b, v)
			rp.ns = b[v:e]
			return e, err
		case jsonx.KeyIs(key, "emitted_at"):
			e, err := jsonx.SkipValue(b, v)
			rp.emitted = b[v:e]
			return e, err
		}
		return jsonx.SkipValue(b, v)
	})
}

// MaxMembers is the widest data whose members Decode keeps (see
// Message.Members): 4096, about 300 KiB of bookkeeping.
const MaxMembers = 4096

// walkData validates the data object at b[v] and records its members with
// their traits in m.Members, and all their traits in m.Traits.
func walkData(b []byte, v int, m *Message) (int, error) {
	var keyTraits jsonx.Traits
	m.Traits = 0
	n := 0
	return jsonx.Walk(b, v, &keyTraits, func(key []byte, v int) (int, error) {
		tr := keyTraits
		keyTraits = 0
		e, err := jsonx.SkipValueIn(b, v, 1, &tr) // MaxDepth counts from data
		if err != nil {
			return e, err
		}
		m.Traits |= tr
		if n++; n > MaxMembers {
			m.Members = nil // too wide to be worth keeping
		} else {
			m.Members = append(m.Members, jsonx.Member{Key: key, Value: b[v:e], Traits: tr})
		}
		return e, nil
	})
}

func checkRecord(rp *recordParts, m *Message) error {
	if !rp.seen {
		return &Error{Reason: "the RECORD message has no record"}
	}
	if !rp.object {
		return &Error{Reason: "the record is not a JSON object"}
	}
	if jsonx.KindOf(rp.stream) != jsonx.String {
		if rp.stream == nil {
			return &Error{Reason: "the record has no stream"}
		}
		return &Error{Reason: "the record's stream is not a string"}
	}
	m.Stream = unquoteBytes(rp.stream)
	e := func(reason string) error {
		return &Error{Stream: string(m.Stream), Namespace: string(m.Namespace), Reason: reason}
	}
	switch jsonx.KindOf(rp.ns) {
	case jsonx.Invalid, jsonx.Null:
	case jsonx.String:
		m.Namespace = unquoteBytes(rp.ns)
	default:
		return e("the record's namespace is not a string")
	}
	m.Data = rp.data
	switch k := jsonx.KindOf(m.Data); k {
	case jsonx.Object:
	case jsonx.Invalid:
		return e("the record has no data")
	default:
		return e(fmt.Sprintf("the record's data is a JSON %s, not an object", k))
	}
	if rp.emitted == nil {
		return e("the record has no emitted_at")
	}
	v, ok := schemas.ParseInteger(rp.emitted)
	if !ok {
		return e("the record's emitted_at is not an integer")
	}
	if v < 0 || v > MaxEmittedAt {
		return e("the record's emitted_at is not a time in epoch milliseconds between the years 1970 and 9999")
	}
	m.EmittedAt = v
	return nil
}

// MaxEmittedAt is the last epoch millisecond of the year 9999, the last
// instant ISO-8601 writes with four digits. A larger emitted_at is most
// likely microseconds or nanoseconds by mistake.
const MaxEmittedAt = 253402300799999

func unquoteBytes(s []byte) []byte {
	if bytes.IndexByte(s, '\\') < 0 {
		return s[1 : len(s)-1]
	}
	u, err := jsonx.Unquote(s)
	if err != nil {
		return s[1 : len(s)-1]
	}
	return []byte(u)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Reader reads lines; one over MaxLine bytes is read through and returned
// as a *LongLine error (see LongLine).
type Reader struct {
	r       *bufio.Reader
	buf     []byte
	line    int
	max     int
	maxLong int64
}

// NewReader reads from r with a 1 MiB buffer.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 1<<20), max: MaxLine, maxLong: MaxLongLine}
}

// Buffered reports how many bytes of input are read but not yet returned:
// zero means the next call may wait for the writer.
func (r *Reader) Buffered() int { return r.r.Buffered() }

// Next returns the next line without its line ending, and its 1-based
// number; the line is valid until the next call. At the end of input it
// returns io.EOF; a last line without a newline is returned as a line. A
// line over MaxLine bytes is returned as a *LongLine error, after which
// the next line follows.
func (r *Reader) Next() ([]byte, int, error) {
	if cap(r.buf) > 4<<20 {
		r.buf = nil // do not keep a huge buffer after one huge line
	}
	line, err := r.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.buf = append(r.buf[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(r.buf) > r.max {
				err := r.skimRest()
				return nil, r.line, err
			}
			line, err = r.r.ReadSlice('\n')
			r.buf = append(r.buf, line...)
		}
		line = r.buf
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, r.line, fmt.Errorf("read stdin: %w", err)
	}
	if len(line) == 0 && err != nil {
		return nil, r.line, io.EOF
	}
	r.line++
	if len(line) > r.max {
		var s skim
		s.feed(bytes.TrimSuffix(line, []byte("\n")))
		return nil, r.line, s.result(r.line)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, r.line, nil
}

// skimRest reads the rest of a line over the limit, whose start is in
// r.buf, holding no more of it than the reader's buffer.
func (r *Reader) skimRest() error {
	r.line++
	var s skim
	s.feed(r.buf)
	r.buf = r.buf[:0]
	for {
		chunk, err := r.r.ReadSlice('\n')
		s.feed(bytes.TrimSuffix(chunk, []byte("\n")))
		switch {
		case err == nil || errors.Is(err, io.EOF):
			return s.result(r.line)
		case err != bufio.ErrBufferFull:
			return fmt.Errorf("read stdin: %w", err)
		case s.err != nil:
			return s.result(r.line) // not one JSON object: no need to read on
		case s.total > r.maxLong:
			s.err = fmt.Errorf("no end of line within %d MiB", r.maxLong>>20)
			return s.result(r.line)
		}
	}
}

// StreamStatus reads a TRACE's stream status: the stream and whether it
// is COMPLETE (or INCOMPLETE); ok is false for any other trace.
func StreamStatus(trace []byte) (name, namespace string, complete, ok bool) {
	typ, _ := jsonx.Unquote(jsonx.Lookup(trace, "type"))
	state, _ := jsonx.Unquote(jsonx.Lookup(trace, "stream_status", "status"))
	desc := jsonx.Lookup(trace, "stream_status", "stream_descriptor")
	complete = state == string(protocol.AirbyteStreamStatusCOMPLETE)
	if typ != string(protocol.AirbyteTraceMessageTypeSTREAMSTATUS) || jsonx.KindOf(desc) != jsonx.Object ||
		!complete && state != string(protocol.AirbyteStreamStatusINCOMPLETE) {
		return "", "", false, false
	}
	name, namespace = StreamDescriptor(desc)
	return name, namespace, complete, name != ""
}

// TraceError reads a TRACE of type ERROR: a failure upstream of the
// destination (older platforms forwarded the source's). name is the stream
// its stream_descriptor names, "" when it names none; ok is false for any
// other trace.
func TraceError(trace []byte) (name, namespace string, ok bool) {
	typ, _ := jsonx.Unquote(jsonx.Lookup(trace, "type"))
	if typ != string(protocol.AirbyteTraceMessageTypeERROR) {
		return "", "", false
	}
	if desc := jsonx.Lookup(trace, "error", "stream_descriptor"); jsonx.KindOf(desc) == jsonx.Object {
		name, namespace = StreamDescriptor(desc)
	}
	return name, namespace, true
}

// StreamDescriptor reads a valid stream_descriptor object: its name and its
// namespace ("" when absent or null).
func StreamDescriptor(desc []byte) (name, namespace string) {
	name, _ = jsonx.Unquote(jsonx.Lookup(desc, "name"))
	if ns := jsonx.Lookup(desc, "namespace"); jsonx.KindOf(ns) == jsonx.String {
		namespace, _ = jsonx.Unquote(ns)
	}
	return name, namespace
}
