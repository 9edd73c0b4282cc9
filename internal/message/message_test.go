package message

import (
	"bytes"
	"destination-keen/internal/jsonx"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"destination-keen/gen/protocol"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, line string
		typ        Type
		stream, ns string
		data       string
		emitted    int64
		err        string
	}{
		{name: "record", line: `{"type":"RECORD","record":{"stream":"users","namespace":"pub","data":{"id":1},"emitted_at":1602637789200}}`,
			typ: Record, stream: "users", ns: "pub", data: `{"id":1}`, emitted: 1602637789200},
		{name: "record null namespace", line: ` {"record":{"namespace":null,"emitted_at":1,"data":{},"stream":"a\"b"},"type":"RECORD"} `,
			typ: Record, stream: `a"b`, data: `{}`, emitted: 1},
		{name: "state", line: `{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"s"}}}}`, typ: State},
		{name: "log", line: `{"type":"LOG","log":{"level":"INFO","message":"x"}}`, typ: Other},
		{name: "trace", line: `{"type":"TRACE","trace":{}}`, typ: Other},
		{name: "control", line: `{"type":"CONTROL","control":{}}`, typ: Other},
		{name: "not json", line: `{"type":`, err: "line is not valid JSON"},
		{name: "garbage", line: `hello`, err: "not JSON"},
		{name: "array", line: `[1]`, err: "JSON array, not an object"},
		{name: "no type", line: `{"record":{}}`, err: "no type"},
		{name: "type not string", line: `{"type":1}`, err: "type is not a string"},
		{name: "a later release's type", line: `{"type":"FROM_A_LATER_RELEASE","later":{}}`, typ: Unknown},
		{name: "a type in lower case", line: `{"type":"record","record":{"stream":"a","data":{},"emitted_at":1}}`, err: `the message type "record" is not one of the protocol's: types are written in capitals, without spaces (RECORD)`},
		{name: "a type in mixed case", line: `{"type":"Record","record":{}}`, err: "(RECORD)"},
		{name: "a type with a space", line: `{"type":"RECORD ","record":{}}`, err: "(RECORD)"},
		{name: "a state in lower case", line: `{"type":"state","state":{}}`, err: "(STATE)"},
		{name: "destination catalog", line: `{"type":"DESTINATION_CATALOG","destination_catalog":{"operations":[]}}`, typ: Other},
		{name: "record without record", line: `{"type":"RECORD"}`, err: "has no record"},
		{name: "record without stream", line: `{"type":"RECORD","record":{"data":{},"emitted_at":1}}`, err: "has no stream"},
		{name: "stream not string", line: `{"type":"RECORD","record":{"stream":5,"data":{},"emitted_at":1}}`, err: "stream is not a string"},
		{name: "record without data", line: `{"type":"RECORD","record":{"stream":"s","emitted_at":1}}`, err: "has no data"},
		{name: "data not object", line: `{"type":"RECORD","record":{"stream":"s","data":"x","emitted_at":1}}`, err: "data is a JSON string"},
		{name: "no emitted_at", line: `{"type":"RECORD","record":{"stream":"s","data":{}}}`, err: "has no emitted_at"},
		{name: "emitted_at float", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1.5}}`, err: "emitted_at is not an integer"},
		{name: "emitted_at written with a fraction of zero", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1700000000000.0}}`,
			typ: Record, stream: "s", data: `{}`, emitted: 1700000000000},
		{name: "emitted_at with an exponent", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1.7e12}}`,
			typ: Record, stream: "s", data: `{}`, emitted: 1700000000000},
		{name: "emitted_at zero", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":0}}`, typ: Record, stream: "s", data: `{}`},
		{name: "emitted_at the last millisecond of 9999", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":253402300799999}}`,
			typ: Record, stream: "s", data: `{}`, emitted: 253402300799999},
		{name: "emitted_at in microseconds", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1700000000000000}}`, err: "not a time in epoch milliseconds"},
		{name: "emitted_at negative", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":-1}}`, err: "not a time in epoch milliseconds"},
		{name: "emitted_at with a huge exponent", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1e-999999999}}`, err: "emitted_at is not an integer"},
		{name: "emitted_at beyond int64", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1e30}}`, err: "emitted_at is not an integer"},
		{name: "emitted_at string", line: `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":"1"}}`, err: "emitted_at is not an integer"},
		{name: "state not object", line: `{"type":"STATE","state":[1]}`, err: "state is a JSON array"},
		{name: "state missing", line: `{"type":"STATE"}`, err: "has no state"},
		{name: "invalid utf8", line: "{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":{\"a\":\"\xff\"},\"emitted_at\":1}}", err: "invalid UTF-8"},
		{name: "nul byte", line: "{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":{\"a\":\"\x00\"},\"emitted_at\":1}}", err: "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			err := Decode([]byte(tt.line), &m)
			if tt.err != "" {
				var me *Error
				if !errors.As(err, &me) || !strings.Contains(me.Reason, tt.err) {
					t.Fatalf("got %v, want an *Error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Type != tt.typ || string(m.Stream) != tt.stream || string(m.Namespace) != tt.ns || string(m.Data) != tt.data || m.EmittedAt != tt.emitted {
				t.Fatalf("got %+v", m)
			}
		})
	}
}

func TestReader(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	input := "a\r\n\n" + big + "\nlast"
	r := NewReader(strings.NewReader(input))
	want := []string{"a", "", big, "last"}
	for i, w := range want {
		line, n, err := r.Next()
		if err != nil || string(line) != w || n != i+1 {
			t.Fatalf("line %d: %d bytes, n=%d, %v", i+1, len(line), n, err)
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

// TestLongLine: a line over the limit is read through, not held, and what
// its message is comes back as a *LongLine; the next line follows. Lines
// over the reader's 1 MiB buffer are read in pieces; shorter ones whole.
func TestLongLine(t *testing.T) {
	for _, size := range []int{2 << 10, 3 << 20} {
		blob := strings.Repeat("z", size)
		tests := []struct {
			name, line string
			want       LongLine
			err        string
		}{
			{"stream first", `{"type":"RECORD","record":{"stream":"users","data":{"b":"` + blob + `"},"emitted_at":1}}`,
				LongLine{Type: "RECORD", Stream: "users"}, ""},
			{"stream last, a namespace, escapes", `{"record":{"data":{"b":"` + blob + `","stream":"no","type":"no"},"emitted_at":1,"namespace":"p\u0075blic","stream":"a \"q\""}, "type" : "RECORD" }`,
				LongLine{Type: "RECORD", Stream: `a "q"`, Namespace: "public"}, ""},
			{"keys in values are not keys", `{"type":"RECORD","record":{"stream":"s","data":{"x":["stream",":","` + blob + `"]}}}`,
				LongLine{Type: "RECORD", Stream: "s"}, ""},
			{"a state", `{"type":"STATE","state":{"data":{"b":"` + blob + `"}}}`, LongLine{Type: "STATE"}, ""},
			{"a stream that is not a string", `{"type":"RECORD","record":{"stream":{"name":"x"},"data":{"b":"` + blob + `"}}}`, LongLine{Type: "RECORD"}, ""},
			{"a type that is not a string", `{"type":1,"record":{"stream":"s","data":{"b":"` + blob + `"}}}`, LongLine{Stream: "s"}, ""},
			{"unterminated", `{"type":"RECORD","record":{"stream":"s","data":{"b":"` + blob + `"}}`, LongLine{Type: "RECORD", Stream: "s"}, "unexpected end of JSON"},
			{"unterminated string", `{"type":"RECORD","record":{"stream":"s","data":{"b":"` + blob, LongLine{Type: "RECORD", Stream: "s"}, "unexpected end of JSON"},
			{"two objects", `{"type":"RECORD","record":{"stream":"s","data":{"b":"` + blob + `"}}}{"type":"STATE"}`, LongLine{Type: "RECORD", Stream: "s"}, "data after the JSON object"},
			{"an array", `["` + blob + `"]`, LongLine{}, "not a JSON object"},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/%d", tt.name, size), func(t *testing.T) {
				r := NewReader(strings.NewReader("short\n" + tt.line + "\r\nnext\n"))
				r.max = min(size, 1<<20) // 3 MiB lines: over the limit two buffers before their end
				if line, n, err := r.Next(); string(line) != "short" || n != 1 || err != nil {
					t.Fatalf("line 1: %q %d %v", line, n, err)
				}
				_, n, err := r.Next()
				var l *LongLine
				if !errors.As(err, &l) || n != 2 || l.Line != 2 {
					t.Fatalf("line 2: n=%d, %v", n, err)
				}
				if l.Type != tt.want.Type || l.Stream != tt.want.Stream || l.Namespace != tt.want.Namespace {
					t.Fatalf("found %+v, want %+v", *l, tt.want)
				}
				if (l.Err == nil) != (tt.err == "") || l.Err != nil && !strings.Contains(l.Err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", l.Err, tt.err)
				}
				if l.Err != nil {
					return // the sync ends here: the rest of the line need not be read
				}
				if int(l.Bytes) != len(tt.line)+1 { // the \r is part of the line for the skim
					t.Fatalf("%d bytes, want %d", l.Bytes, len(tt.line)+1)
				}
				if line, n, err := r.Next(); string(line) != "next" || n != 3 || err != nil {
					t.Fatalf("line 3: %q %d %v", line, n, err)
				}
			})
		}
	}
}

// coreMessage is what the write path reads of a message, decoded by
// encoding/json with the generated protocol's message type (the rest of a
// message is the schema fixtures' business, not the decoder's).
type coreMessage struct {
	Type   protocol.AirbyteMessageType `json:"type"`
	Record *coreRecord                 `json:"record"`
	State  json.RawMessage             `json:"state"`
}

type coreRecord struct {
	Stream    *string         `json:"stream"`
	Namespace *string         `json:"namespace"`
	Data      json.RawMessage `json:"data"`
	EmittedAt json.Number     `json:"emitted_at"`
}

// decodeExact reads line into a coreMessage as json.Unmarshal does, but
// matching member names exactly, as the protocol and Airbyte's own reader
// (Jackson) do: encoding/json also takes "nAmespACe" for namespace.
func decodeExact(line []byte) (coreMessage, error) {
	var g coreMessage
	var top map[string]json.RawMessage
	if err := json.Unmarshal(line, &top); err != nil {
		return g, err
	}
	if v, ok := top["type"]; ok {
		if err := json.Unmarshal(v, &g.Type); err != nil {
			return g, err
		}
	}
	g.State = top["state"]
	if v, ok := top["record"]; ok {
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(v, &rec); err != nil {
			return g, err
		}
		if rec != nil {
			g.Record = &coreRecord{}
			for name, dst := range map[string]any{"stream": &g.Record.Stream, "namespace": &g.Record.Namespace, "data": &g.Record.Data, "emitted_at": &g.Record.EmittedAt} {
				if v, ok := rec[name]; ok {
					if err := json.Unmarshal(v, dst); err != nil {
						return g, err
					}
				}
			}
		}
	}
	return g, nil
}

// FuzzDecode compares the decoder with encoding/json and the generated
// message type (member names matched exactly) on every input: what the decoder accepts, they read the same
// way (type, stream, namespace, emitted_at, the exact bytes of data and
// state, data's members in order); what it refuses and they read, it refuses
// for one of its own stricter rules.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"RECORD","record":{"stream":"users","data":{"id":1},"emitted_at":1}}`,
		`{"type":"RECORD","record":{"stream":"u","namespace":"n","data":{"a":{"b":[1,2]},"a":"x"},"emitted_at":1700000000000}}`,
		`{"type":"STATE","state":{"type":"GLOBAL","global":{}}}`,
		`{"type":"LOG","log":{}}`, `{"type":"RECORD","record":{"stream":"s","data":[],"emitted_at":1}}`, `[]`, `{`,
		`{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1e20}}`,
		`{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1.7e12}}`,
	} {
		f.Add([]byte(s))
	}
	var m Message
	f.Fuzz(func(t *testing.T, line []byte) {
		err := Decode(line, &m)
		g, gerr := decodeExact(line)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error of type %T", err)
			}
			if gerr == nil && g.Type == protocol.AirbyteMessageTypeRECORD && !stricter(me.Reason) {
				t.Fatalf("refused %q (%s), which encoding/json and the generated message type read", line, me.Reason)
			}
			return
		}
		if m.Type == Unknown {
			// A later release's type is skipped whole, whatever its other
			// members hold: only the line's JSON and its type are read.
			var top map[string]json.RawMessage
			var typ string
			uerr := json.Unmarshal(line, &top)
			if uerr == nil {
				uerr = json.Unmarshal(top["type"], &typ)
			}
			if uerr != nil || typ != m.TypeName {
				t.Fatalf("%q: skipped as type %q, encoding/json reads %q (%v)", line, m.TypeName, typ, uerr)
			}
			if _, known := knownTypes[m.TypeName]; known {
				t.Fatalf("%q: skipped a known type %q", line, m.TypeName)
			}
			return
		}
		if gerr != nil {
			t.Fatalf("accepted %q, which encoding/json and the generated message type refuse: %v", line, gerr)
		}
		if string(g.Type) != m.TypeName {
			t.Fatalf("%q: type %q, encoding/json %q", line, m.TypeName, g.Type)
		}
		switch m.Type {
		case Record:
			r := g.Record
			ns := ""
			if r.Namespace != nil {
				ns = *r.Namespace
			}
			if r.Stream == nil || *r.Stream != string(m.Stream) || ns != string(m.Namespace) || !bytes.Equal(r.Data, m.Data) {
				t.Fatalf("%q: decoded %q/%q/%s, encoding/json %v/%q/%s", line, m.Stream, m.Namespace, m.Data, r.Stream, ns, r.Data)
			}
			if f, err := r.EmittedAt.Float64(); err != nil || f != float64(m.EmittedAt) {
				t.Fatalf("%q: emitted_at %d, encoding/json %s", line, m.EmittedAt, r.EmittedAt)
			}
			d := json.NewDecoder(bytes.NewReader(r.Data))
			if _, err := d.Token(); err != nil {
				t.Fatal(err)
			}
			i := 0
			for ; d.More(); i++ {
				k, _ := d.Token()
				var v json.RawMessage
				if err := d.Decode(&v); err != nil {
					t.Fatal(err)
				}
				if i >= len(m.Members) || m.Members[i].Name() != k || !bytes.Equal(m.Members[i].Value, v) {
					t.Fatalf("%q: member %d is %q=%s for encoding/json", line, i, k, v)
				}
			}
			if i != len(m.Members) {
				t.Fatalf("%q: %d members, encoding/json %d", line, len(m.Members), i)
			}
		case State:
			if !bytes.Equal(g.State, m.State) {
				t.Fatalf("%q: state %s, encoding/json %s", line, m.State, g.State)
			}
			// The kind and stream, read in the one pass, are encoding/json's
			// (exact names: its struct fields ignore case).
			// Numbers as their text: a state is opaque and passes through
			// byte for byte, 1E700 included, which no float64 holds.
			var st map[string]any
			sd := json.NewDecoder(bytes.NewReader(m.State))
			sd.UseNumber()
			if err := sd.Decode(&st); err != nil {
				t.Fatal(err)
			}
			kind, _ := st["type"].(string)
			if kind == "" {
				kind = string(LegacyState)
			}
			var name any
			if s, ok := st["stream"].(map[string]any); ok {
				if d, ok := s["stream_descriptor"].(map[string]any); ok {
					name = d["name"]
				}
			}
			if string(m.StateKind) != kind || m.StateKind == StreamState && name != m.StateStream {
				t.Fatalf("%q: state %s of %q, encoding/json %s of %v", line, m.StateKind, m.StateStream, kind, name)
			}
			if at := jsonx.TrimSpace(line)[m.StateAt[0]:m.StateAt[1]]; !bytes.Equal(at, m.State) {
				t.Fatalf("%q: StateAt %v holds %s", line, m.StateAt, at)
			}
		}
	})
}

// stricter says whether a refusal is one of the decoder's own rules beyond
// what encoding/json enforces: required members, data an object, emitted_at
// a whole number of epoch milliseconds, strings of valid UTF-8 (encoding/json
// replaces bad bytes), nesting bounded.
func stricter(reason string) bool {
	for _, r := range []string{"has no", "not an object", "emitted_at", "UTF-8", "nested too deeply"} {
		if strings.Contains(reason, r) {
			return true
		}
	}
	return false
}

// TestDecodeMembers: data's members, with their traits, as the one pass
// found them; the last data (or record) member wins.
func TestDecodeMembers(t *testing.T) {
	tests := []struct {
		name, line string
		members    []string // key=value/traits
	}{
		{"in order", `{"type":"RECORD","record":{"stream":"s","data":{"ts":5,"keen":{"a":1},"ts":6},"emitted_at":1}}`,
			[]string{`"ts"=5/0`, `"keen"={"a":1}/0`, `"ts"=6/0`}},
		{"empty data", `{"type":"RECORD","record":{"stream":"s","data":{},"emitted_at":1}}`, nil},
		{"traits per member", `{"type":"RECORD","record":{"stream":"s","data":{"a.b":1,"c":[{}],"d":{"$e":2}},"emitted_at":1}}`,
			[]string{`"a.b"=1/1`, `"c"=[{}]/10`, `"d"={"$e":2}/1`}},
		{"the last data wins", `{"type":"RECORD","record":{"stream":"s","data":{"ts":5,"keen":{"a":1}},"data":{"ts":6},"emitted_at":1}}`,
			[]string{`"ts"=6/0`}},
		{"the last record wins", `{"type":"RECORD","record":{"stream":"s","data":{"ts":5},"emitted_at":1},"record":{"stream":"s","data":{},"emitted_at":1}}`, nil},
		{"data before stream", `{"type":"RECORD","record":{"data":{"x":[[1]]},"namespace":"n","stream":"s","emitted_at":1}}`,
			[]string{`"x"=[[1]]/10`}},
	}
	var m Message // reused, as the pipeline does
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Decode([]byte(tt.line), &m); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, mb := range m.Members {
				got = append(got, fmt.Sprintf("%s=%s/%b", mb.Key, mb.Value, mb.Traits))
			}
			if strings.Join(got, " ") != strings.Join(tt.members, " ") {
				t.Fatalf("members %q, want %q", got, tt.members)
			}
		})
	}
}

func TestStreamStatus(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{`{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"users","namespace":"pub"},"status":"COMPLETE"}}}`, "users pub true true"},
		{`{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"users"},"status":"INCOMPLETE"}}}`, "users  false true"},
		{`{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"users"},"status":"RUNNING"}}}`, "  false false"},
		{`{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1,"error":{"message":"x"}}}`, "  false false"},
	}
	for _, tt := range tests {
		var m Message
		if err := Decode([]byte(tt.line), &m); err != nil {
			t.Fatal(err)
		}
		name, ns, complete, ok := StreamStatus(m.Trace)
		if got := fmt.Sprintf("%s %s %v %v", name, ns, complete, ok); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.line, got, tt.want)
		}
	}
}

func TestTraceError(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"a stream's", `{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1,"error":{"message":"m","failure_type":"system_error","stream_descriptor":{"name":"users","namespace":"pub"}}}}`, "users pub true"},
		{"the sync's", `{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1,"error":{"message":"m"}}}`, "  true"},
		{"a descriptor that is not an object", `{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1,"error":{"message":"m","stream_descriptor":null}}}`, "  true"},
		{"a stream status", `{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"users"},"status":"COMPLETE"}}}`, "  false"},
		{"an estimate", `{"type":"TRACE","trace":{"type":"ESTIMATE","emitted_at":1,"estimate":{"name":"users","type":"STREAM"}}}`, "  false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := Decode([]byte(tt.line), &m); err != nil {
				t.Fatal(err)
			}
			name, ns, ok := TraceError(m.Trace)
			if got := fmt.Sprintf("%s %s %v", name, ns, ok); got != tt.want {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
}

// TestEndlessLine: input without a newline ends in an error, without
// reading on past what shows it is not a message, or past the bound.
func TestEndlessLine(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    io.Reader
		want string
	}{
		{"zeros", repeat(0), "not a JSON object at byte 0"},
		{"a string that never ends", io.MultiReader(strings.NewReader(`{"type":"RECORD","record":{"stream":"s","data":{"b":"`), repeat('z')), "no end of line within 8 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(tt.r)
			r.max, r.maxLong = 1<<20, 8<<20
			_, _, err := r.Next()
			var l *LongLine
			if !errors.As(err, &l) || l.Err == nil || !strings.Contains(l.Err.Error(), tt.want) || l.Bytes > 10<<20 {
				t.Fatalf("%v", err)
			}
		})
	}
}

type repeat byte

func (c repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// TestWideData: data of more than MaxMembers members keeps none, so that
// memory does not grow with a record's width, and still notes every
// member's traits; the next record keeps its members again.
func TestWideData(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"type":"RECORD","record":{"stream":"s","emitted_at":1,"data":{`)
	for i := range MaxMembers {
		fmt.Fprintf(&b, `"p%d":%d,`, i, i)
	}
	b.WriteString(`"last.one":[{}]}}}`)
	var m Message
	if err := Decode([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	if m.Members != nil || m.Traits != jsonx.OddKey|jsonx.NestedArray {
		t.Fatalf("%d members kept, traits %b", len(m.Members), m.Traits)
	}
	if err := Decode([]byte(`{"type":"RECORD","record":{"stream":"s","emitted_at":1,"data":{"a":1,"b.c":2}}}`), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Members) != 2 || m.Traits != jsonx.OddKey || m.Members[1].Traits != jsonx.OddKey {
		t.Fatalf("narrow data after wide: %d members, traits %b", len(m.Members), m.Traits)
	}
}

// FuzzSkim compares the structural scan of long lines with encoding/json:
// on every valid JSON object it finds no error and the same type, stream
// and namespace (strings of up to 1 KiB), fed whole or in two pieces.
func FuzzSkim(f *testing.F) {
	for _, s := range []string{
		`{"type":"RECORD","record":{"stream":"users","namespace":"p","data":{"id":1},"emitted_at":1}}`,
		`{"record":{"data":{"stream":"x","a":[{"type":"y"}]},"stream":"s\"\\u00e9"},"type":"STATE"}`,
		`{"type":1,"record":{"stream":null}}`, `{"a":"\\\\","type":"T"}`, `{} `, `[1]`, `{"a":1}{}`,
	} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, line []byte, cut int) {
		if !json.Valid(line) || !utf8.Valid(line) || jsonx.KindOf(jsonx.TrimSpace(line)) != jsonx.Object {
			return
		}
		var want map[string]any // exact names: encoding/json's struct fields ignore case
		wd := json.NewDecoder(bytes.NewReader(line))
		wd.UseNumber() // numbers beyond float64 (1E700) are valid JSON too
		if err := wd.Decode(&want); err != nil {
			return
		}
		str := func(v any) string {
			if s, ok := v.(string); ok && len(s) <= maxCaptured/6 {
				return s
			}
			return ""
		}
		var stream, ns string
		if r, ok := want["record"].(map[string]any); ok {
			stream, ns = str(r["stream"]), str(r["namespace"])
		}
		var s skim
		cut = min(max(cut, 0), len(line))
		s.feed(line[:cut])
		s.feed(line[cut:])
		got := s.result(1)
		if got.Err != nil || got.Bytes != int64(len(line)) {
			t.Fatalf("%v, %d bytes of %d", got.Err, got.Bytes, len(line))
		}
		if typ := str(want["type"]); typ != "" && got.Type != typ || stream != "" && got.Stream != stream || ns != "" && got.Namespace != ns {
			t.Fatalf("found %q %q %q, want %q %q %q", got.Type, got.Stream, got.Namespace, typ, stream, ns)
		}
	})
}

// TestStates: the decoder reads a state's kind and stream by one rule for
// every kind and field, in its one pass over the line.
func TestStates(t *testing.T) {
	tests := []struct {
		state, kind, name, ns, err string
	}{
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":"users","namespace":"pub"},"stream_state":{}}}`, "STREAM", "users", "pub", ""},
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":"users","namespace":null}}}`, "STREAM", "users", "", ""},
		{`{"type":"GLOBAL","global":{}}`, "GLOBAL", "", "", ""},
		{`{"data":{"cursor":1}}`, "LEGACY", "", "", ""},
		{`{"type":"STREAM"}`, "", "", "", "needs a stream object"},
		{`{"type":"STREAM","stream":{}}`, "", "", "", "needs stream.stream_descriptor"},
		{`{"type":"PER_STREAM"}`, "", "", "", "unknown state type"},
		// One rule for every kind and field.
		{`{"type":null,"data":{}}`, "LEGACY", "", "", ""},
		{`{"type":"LEGACY"}`, "LEGACY", "", "", ""},
		{`{"type":1}`, "", "", "", "the state's type is a JSON number, not STREAM, GLOBAL or LEGACY"},
		{`{"type":[]}`, "", "", "", "the state's type is a JSON array"},
		{`{"type":"FOO"}`, "", "", "", "unknown state type"},
		{`{"type":"GLOBAL","global":{"shared_state":{"lsn":1},"stream_states":[]}}`, "GLOBAL", "", "", ""},
		{`{"type":"GLOBAL"}`, "", "", "", "a GLOBAL state needs a global object"},
		{`{"type":"GLOBAL","global":null}`, "", "", "", "a GLOBAL state needs a global object"},
		{`{"type":"GLOBAL","global":"x"}`, "", "", "", "a GLOBAL state needs a global object"},
		{`{"type":"GLOBAL","global":[]}`, "", "", "", "a GLOBAL state needs a global object"},
		{`{"type":"GLOBAL","global":{"stream_states":{}}}`, "", "", "", "stream_states must be an array"},
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":"u","namespace":1}}}`, "", "", "", "namespace must be a string"},
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":""}}}`, "", "", "", "needs stream.stream_descriptor.name"},
		// What the pass picks is the state's own: a descriptor or a type
		// inside a blob is not.
		{`{"type":"STREAM","stream":{"stream_state":{"name":"no"}}}`, "", "", "", "needs stream.stream_descriptor"},
		{`{"data":{"type":"STREAM"}}`, "LEGACY", "", "", ""},
		{`{"type":"GLOBAL","global":{"shared_state":{"stream_states":{}}}}`, "GLOBAL", "", "", ""},
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":"a"}},"stream":{"stream_state":{}}}`, "", "", "", "needs stream.stream_descriptor"},
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":"a"}},"type":"LEGACY"}`, "LEGACY", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			var m Message
			err := Decode([]byte(`{"type":"STATE","state":`+tt.state+`}`), &m)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || string(m.StateKind) != tt.kind || m.StateStream != tt.name || m.StateNamespace != tt.ns || string(m.State) != tt.state {
				t.Fatalf("got %s %s %s %v", m.StateKind, m.StateStream, m.StateNamespace, err)
			}
		})
	}
}

func TestWithDestinationStats(t *testing.T) {
	tests := []struct {
		name, line string
		records    int64
		rejected   int64
		want       string
	}{
		{"stream", `{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"u"},"stream_state":{"c":18446744073709551615}},"sourceStats":{"recordCount":3.0}}}`, 3, 0,
			`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"u"},"stream_state":{"c":18446744073709551615}},"sourceStats":{"recordCount":3.0},"destinationStats":{"recordCount":3.0}}}`},
		{"replaces existing", `{"state":{"destinationStats":{"recordCount":99},"data":{}} ,"type":"STATE"}`, 0, 2,
			`{"state":{"data":{},"destinationStats":{"recordCount":0.0,"rejectedRecordCount":2.0}} ,"type":"STATE"}`},
		{"empty state", `{"type":"STATE","state":{}}`, 1, 0, `{"type":"STATE","state":{"destinationStats":{"recordCount":1.0}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := Decode([]byte(tt.line), &m); err != nil {
				t.Fatal(err)
			}
			got := WithDestinationStats([]byte(tt.line), m.StateAt, tt.records, tt.rejected)
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatal("not JSON")
			}
		})
	}
}
