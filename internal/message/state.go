package message

import (
	"errors"
	"fmt"
	"strconv"

	"destination-keen/gen/protocol"
	"destination-keen/internal/jsonx"
)

// StateKind is a state message's kind.
type StateKind string

// State kinds, from the generated protocol; a state without a type is LEGACY.
const (
	StreamState = StateKind(protocol.AirbyteStateTypeSTREAM)
	GlobalState = StateKind(protocol.AirbyteStateTypeGLOBAL)
	LegacyState = StateKind(protocol.AirbyteStateTypeLEGACY)
)

// stateParts are the members of a state object that the connector reads,
// found while the decoder validates the line: the blobs (stream_state,
// shared_state, data) are skipped once and never looked at again.
type stateParts struct {
	typ, stream, global []byte
	descriptor          []byte // stream.stream_descriptor
	streamStates        []byte // global.stream_states
}

// walkState validates the state object at b[v] and picks its parts.
func walkState(b []byte, v int, sp *stateParts) (int, error) {
	*sp = stateParts{}
	if b[v] != '{' {
		return jsonx.SkipValue(b, v)
	}
	pick := func(into *[]byte, inner func(int) (int, error)) func(int) (int, error) {
		return func(v int) (int, error) {
			e, err := inner(v)
			*into = b[v:e]
			return e, err
		}
	}
	// Depths count from the state object, as when it was skipped whole.
	skip := func(v int) (int, error) { return jsonx.SkipValueIn(b, v, 1, nil) }
	// within walks the object at b[v], if it is one, picking member name.
	within := func(name string, into *[]byte) func(int) (int, error) {
		return func(v int) (int, error) {
			if b[v] != '{' {
				return skip(v)
			}
			return jsonx.Walk(b, v, nil, func(key []byte, v int) (int, error) {
				if jsonx.KeyIs(key, name) {
					return pick(into, func(v int) (int, error) { return jsonx.SkipValueIn(b, v, 2, nil) })(v)
				}
				return jsonx.SkipValueIn(b, v, 2, nil)
			})
		}
	}
	return jsonx.Walk(b, v, nil, func(key []byte, v int) (int, error) {
		switch {
		case jsonx.KeyIs(key, "type"):
			return pick(&sp.typ, skip)(v)
		case jsonx.KeyIs(key, "stream"):
			sp.descriptor = nil // the last stream wins, all of it
			return pick(&sp.stream, within("stream_descriptor", &sp.descriptor))(v)
		case jsonx.KeyIs(key, "global"):
			sp.streamStates = nil
			return pick(&sp.global, within("stream_states", &sp.streamStates))(v)
		}
		return skip(v)
	})
}

// describe reads the state's kind and, for a STREAM state, its stream, by
// one rule for every kind, the protocol's: type is STREAM, GLOBAL or
// LEGACY, or absent (or null) for LEGACY; a STREAM state has a stream object
// whose stream_descriptor has a name and, if any, a namespace that is a
// string (or null); a GLOBAL state has a global object, whose stream_states,
// if present, is an array; a LEGACY state may hold anything in data. The
// blobs themselves are the source's and are not read.
func (sp *stateParts) describe(m *Message) error {
	m.StateKind = LegacyState
	switch k := jsonx.KindOf(sp.typ); k {
	case jsonx.Invalid, jsonx.Null: // absent or null: LEGACY
	case jsonx.String:
		s, _ := jsonx.Unquote(sp.typ)
		m.StateKind = StateKind(s)
	default:
		return fmt.Errorf("the state's type is a JSON %s, not STREAM, GLOBAL or LEGACY", k)
	}
	switch m.StateKind {
	case LegacyState:
		return nil
	case GlobalState:
		if jsonx.KindOf(sp.global) != jsonx.Object {
			return errors.New("a GLOBAL state needs a global object")
		}
		if sp.streamStates != nil && jsonx.KindOf(sp.streamStates) != jsonx.Array {
			return errors.New("a GLOBAL state's global.stream_states must be an array")
		}
		return nil
	case StreamState:
	default:
		return fmt.Errorf("unknown state type %q", m.StateKind)
	}
	if jsonx.KindOf(sp.stream) != jsonx.Object {
		return errors.New("a STREAM state needs a stream object")
	}
	if jsonx.KindOf(sp.descriptor) != jsonx.Object {
		return errors.New("a STREAM state needs stream.stream_descriptor")
	}
	if ns := jsonx.Lookup(sp.descriptor, "namespace"); ns != nil && jsonx.KindOf(ns) != jsonx.String && jsonx.KindOf(ns) != jsonx.Null {
		return errors.New("a STREAM state's stream.stream_descriptor.namespace must be a string")
	}
	m.StateStream, m.StateNamespace = StreamDescriptor(sp.descriptor)
	if m.StateStream == "" {
		return errors.New("a STREAM state needs stream.stream_descriptor.name")
	}
	return nil
}

// WithDestinationStats returns the STATE message line, whose state object
// spans line[start:end] of the line with its white space around trimmed
// (Message.StateAt), with state.destinationStats replaced by the given
// counts; every other byte is kept. Counts are written with a decimal point
// (3.0), as the protocol's number type is read by the platform;
// rejectedRecordCount only when it is not zero.
func WithDestinationStats(line []byte, at [2]int, records, rejected int64) []byte {
	msg := jsonx.TrimSpace(line)
	start, end := at[0], at[1]
	out := make([]byte, 0, len(msg)+64)
	out = append(out, msg[:start]...)
	out, _ = jsonx.AppendWithout(out, msg[start:end], "destinationStats")
	out = append(out, `"destinationStats":{"recordCount":`...)
	out = strconv.AppendFloat(out, float64(records), 'f', 1, 64)
	if rejected > 0 {
		out = append(out, `,"rejectedRecordCount":`...)
		out = strconv.AppendFloat(out, float64(rejected), 'f', 1, 64)
	}
	out = append(out, "}}"...)
	return append(out, msg[end:]...)
}
