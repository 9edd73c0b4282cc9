package message

import (
	"errors"
	"io"
	"strings"
	"testing"

	"destination-keen/internal/jsonx"
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
		{name: "state", line: `{"type":"STATE","state":{"type":"STREAM"}}`, typ: State},
		{name: "log", line: `{"type":"LOG","log":{"level":"INFO","message":"x"}}`, typ: Other},
		{name: "trace", line: `{"type":"TRACE","trace":{}}`, typ: Other},
		{name: "control", line: `{"type":"CONTROL","control":{}}`, typ: Other},
		{name: "not json", line: `{"type":`, err: "line is not valid JSON"},
		{name: "garbage", line: `hello`, err: "not JSON"},
		{name: "array", line: `[1]`, err: "JSON array, not an object"},
		{name: "no type", line: `{"record":{}}`, err: "no type"},
		{name: "type not string", line: `{"type":1}`, err: "type is not a string"},
		{name: "unknown type", line: `{"type":"HEARTBEAT"}`, err: `unknown message type "HEARTBEAT"`},
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
	r = NewReader(strings.NewReader(strings.Repeat("y", 5<<20)))
	r.max = 2 << 20
	if _, _, err := r.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("want ErrLineTooLong, got %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"RECORD","record":{"stream":"users","data":{"id":1},"emitted_at":1}}`,
		`{"type":"STATE","state":{"type":"GLOBAL","global":{}}}`,
		`{"type":"LOG","log":{}}`, `{"type":"RECORD","record":{"stream":"s","data":[],"emitted_at":1}}`, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var m Message
		err := Decode(line, &m)
		if err != nil {
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		switch m.Type {
		case Record:
			if len(m.Data) == 0 || m.Data[0] != '{' {
				t.Fatalf("record data %q", m.Data)
			}
		case State:
			if len(m.State) == 0 || m.State[0] != '{' {
				t.Fatalf("state %q", m.State)
			}
		}
	})
}

func TestDecoderCaptures(t *testing.T) {
	d := Decoder{Capture: func(ns, stream []byte) string {
		if string(stream) == "s" && string(ns) == "n" {
			return "ts"
		}
		return ""
	}}
	tests := []struct {
		name, line     string
		keen, captured string
		empty, done    bool
	}{
		{"in order", `{"type":"RECORD","record":{"namespace":"n","stream":"s","data":{"ts":5,"keen":{"a":1},"ts":6},"emitted_at":1}}`, `{"a":1}`, "6", false, true},
		{"empty data", `{"type":"RECORD","record":{"namespace":"n","stream":"s","data":{},"emitted_at":1}}`, "", "", true, true},
		{"other stream", `{"type":"RECORD","record":{"stream":"x","data":{"ts":5},"emitted_at":1}}`, "", "", false, true},
		{"stream after data", `{"type":"RECORD","record":{"data":{"ts":5,"keen":1},"namespace":"n","stream":"s","emitted_at":1}}`, "1", "", false, false},
		{"the last data wins", `{"type":"RECORD","record":{"namespace":"n","stream":"s","data":{"ts":5,"keen":{"a":1}},"data":{"ts":6},"emitted_at":1}}`, "", "6", false, true},
		{"the last record wins", `{"type":"RECORD","record":{"namespace":"n","stream":"s","data":{"ts":5,"keen":{"a":1}},"emitted_at":1},"record":{"namespace":"n","stream":"s","data":{},"emitted_at":1}}`, "", "", true, true},
		{"namespace after data", `{"type":"RECORD","record":{"stream":"s","data":{"ts":5},"namespace":"n","emitted_at":1}}`, "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := d.Decode([]byte(tt.line), &m); err != nil {
				t.Fatal(err)
			}
			if string(m.Keen) != tt.keen || string(m.Captured) != tt.captured || m.DataEmpty != tt.empty || m.CaptureDone != tt.done {
				t.Fatalf("keen %q captured %q empty %v done %v", m.Keen, m.Captured, m.DataEmpty, m.CaptureDone)
			}
		})
	}
}

func TestDecoderTraits(t *testing.T) {
	long := strings.Repeat("k", 256)
	tests := []struct {
		name, data string
		want       jsonx.Traits
	}{
		{"plain", `{"a":1,"b":{"c":[1,"x"]}}`, 0},
		{"dot", `{"a":{"b.c":1}}`, jsonx.OddKey},
		{"dollar", `{"$a":1}`, jsonx.OddKey},
		{"empty name", `{"":1}`, jsonx.OddKey},
		{"escaped name", `{"a\u002eb":1}`, jsonx.OddKey},
		{"255 bytes", `{"` + long[:255] + `":1}`, 0},
		{"256 bytes", `{"` + long + `":1}`, jsonx.OddKey},
		{"dot in a value", `{"a":"b.c","$":"$"}`, jsonx.OddKey},
		{"dot in a string value only", `{"a":"b.c $x"}`, 0},
		{"array of objects", `{"a":[1,{"b":2}]}`, jsonx.NestedArray},
		{"array of arrays", `{"a":[[1]]}`, jsonx.NestedArray},
		{"keen's own rules", `{"keen":{"addons":[{"a.b":1}],"$x":1}}`, 0},
		{"keen below the top", `{"x":{"keen":{"addons":[{}]}}}`, jsonx.NestedArray},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			line := `{"type":"RECORD","record":{"stream":"s","data":` + tt.data + `,"emitted_at":1}}`
			if err := Decode([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			if m.Traits != tt.want {
				t.Fatalf("traits %b, want %b", m.Traits, tt.want)
			}
		})
	}
	var m Message
	if err := Decode([]byte(`{"type":"RECORD","record":{"stream":"s","data":{"a":[{}]},"data":{"a":1},"emitted_at":1}}`), &m); err != nil || m.Traits != 0 {
		t.Fatalf("the traits of an earlier data member stayed: %b %v", m.Traits, err)
	}
}
