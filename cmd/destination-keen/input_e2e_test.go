package main

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"destination-keen/tools/keenlocal/emulator"
)

func TestSyncTimestampsAndEvents(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(
			cstream{name: "visits", mode: "append", cursor: []string{"ts"}},
			cstream{name: "Ünïcödé Stream!", mode: "append", cursor: []string{"meta", "updated"},
				schema: `{"properties":{"meta":{"properties":{"updated":{"type":["null","string"],"format":"date-time"}}}}}`},
		))
		in := lines(
			rec("visits", `{"id":"java-utc","ts":"1999/12/15 14:44 utc"}`, 1602637789200),
			rec("visits", `{"id":"seconds","ts":1628080068}`, 1602637789200),
			rec("visits", `{"id":"millis","ts":1628081113151}`, 1602637789200),
			rec("visits", `{"id":"an-id","ts":250000}`, 1602637789200),
			rec("visits", `{"id":"text","ts":"some_text"}`, 1602637789200),
			rec("visits", `{"id":"missing"}`, 1602637789200),
			rec("visits", `{"id":"big","ts":1628080068,"n":18446744073709551615,"s":"a\nb\r\u2028 \"q\" 日本","keen":{"uniqueness_token":"u1","id":"x","location":{"coordinates":[1,2]}}}`, 1602637789200),
			"",
			rec("Ünïcödé Stream!", `{"id":"nested","meta":{"updated":"2021-08-04T14:27:48+02:00"}}`, 1602637789200),
			rec("Ünïcödé Stream!", `{"id":"nested-null","meta":{"updated":null}}`, 1602637789200),
			`{"type":"LOG","log":{"level":"INFO","message":"from the source"}}`,
			`{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"visits"},"status":"COMPLETE"}}}`,
			`{"type":"CONTROL","control":{"type":"CONNECTOR_CONFIG","emitted_at":1,"connectorConfig":{"config":{}}}}`,
			streamState("visits", "1"),
		)
		r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		visits := byField(e.events("visits"), "id")
		want := map[string]string{
			"java-utc": "1999-12-15T14:44:00Z",
			"seconds":  "2021-08-04T12:27:48Z",
			"millis":   "2021-08-04T12:45:13.151Z",
			"an-id":    "2020-10-14T01:09:49.200Z",
			"text":     "2020-10-14T01:09:49.200Z",
			"missing":  "2020-10-14T01:09:49.200Z",
			"big":      "2021-08-04T12:27:48Z",
		}
		if len(visits) != len(want) {
			t.Fatalf("%d visits landed, want %d", len(visits), len(want))
		}
		for id, ts := range want {
			if got := keenTS(visits[id]); got != ts {
				t.Errorf("%s: keen.timestamp %s, want %s", id, got, ts)
			}
		}
		big := visits["big"]
		if fmt.Sprint(big["n"]) != "18446744073709551615" || big["s"] != "a\nb\r\u2028 \"q\" 日本" {
			t.Errorf("data changed: n=%v s=%q", big["n"], big["s"])
		}
		k := big["keen"].(map[string]any)
		if k["uniqueness_token"] != "u1" || k["location"] == nil {
			t.Errorf("writable keen keys lost: %v", k)
		}
		uni := byField(e.events("Unicode_Stream"), "id")
		if keenTS(uni["nested"]) != "2021-08-04T12:27:48Z" || keenTS(uni["nested-null"]) != "2020-10-14T01:09:49.200Z" {
			t.Errorf("nested cursor: %v", uni)
		}
		logs := r.logs()
		for _, s := range []string{
			`Stream "visits" -> "visits": 7 records; keen.timestamp from the cursor for 4, from emitted_at for 3`,
			`Stream "Ünïcödé Stream!" -> collection "Unicode_Stream"`,
			`1 key of the source's keen objects dropped`,
		} {
			if !strings.Contains(logs, s) {
				t.Errorf("logs lack %q:\n%s", s, logs)
			}
		}
		e.noRejections()
	})
}

func TestInferenceOff(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "visits", mode: "append", cursor: []string{"ts"}}))
	r := e.run(lines(rec("visits", `{"ts":1628080068}`, 1602637789200)), "write", "--config", e.config(map[string]any{"infer_timestamp": false}), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	evs := e.events("visits")
	if len(evs) != 1 || keenTS(evs[0]) != "2020-10-14T01:09:49.200Z" {
		t.Fatalf("inference off must use emitted_at: %v", evs)
	}
}

func TestStateCounting(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}, cstream{name: "b", mode: "append"}))
		blob := `{"cursor":18446744073709551615,"nested":{"k":[1,2]}}`
		in := lines(
			streamState("a", `"start"`), // before any record: 0.0
			rec("a", `{"n":1}`, 1), rec("b", `{"n":1}`, 1), rec("a", `{"n":2}`, 1),
			streamState("a", `"a2"`), // a: 2
			rec("b", `{"n":2}`, 1),
			streamState("b", `"b2"`), // b: 2 (one before a's state, one after)
			rec("a", `{"n":3}`, 1), rec("b", `{"n":3}`, 1),
			`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":`+blob+`,"stream_states":[]},"sourceStats":{"recordCount":2.0}}}`, // all: 2
			rec("a", `{"n":4}`, 1),
			`{"type":"STATE","state":{"data":`+blob+`}}`, // LEGACY: 1
			`{"type":"STATE","state":{"type":"LEGACY","data":{},"destinationStats":{"recordCount":99}}}`, // 0, replaced
		)
		r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stdout)
		}
		if got, want := r.stateCounts(), "0.0/<nil>,2.0/<nil>,2.0/<nil>,2.0/<nil>,1.0/<nil>,0.0/<nil>"; got != want {
			t.Fatalf("recordCount/rejectedRecordCount %s, want %s", got, want)
		}
		// Blobs pass through byte for byte, sourceStats too.
		if !strings.Contains(r.stdout, `"shared_state":`+blob) || !strings.Contains(r.stdout, `"data":`+blob) || !strings.Contains(r.stdout, `"sourceStats":{"recordCount":2.0}`) {
			t.Fatalf("state blobs changed:\n%s", r.stdout)
		}
		e.noRejections()
	})
}

// TestRejectedCounts: records left out on purpose (nonconforming_records:
// skip) count in the rejectedRecordCount of the state they belong to, for
// every kind of state: per stream for a STREAM state, all streams since the
// previous state for GLOBAL and LEGACY; written only when not zero.
func TestRejectedCounts(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}, cstream{name: "b", mode: "append"}))
		in := lines(
			rec("a", `{"ok":1}`, 1), rec("a", `{"$bad":1}`, 1),
			streamState("a", "1"), // a: 2 records, 1 rejected
			rec("b", `{"$bad":2}`, 1), rec("a", `{"$bad":3}`, 1), rec("b", `{"ok":2}`, 1),
			`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"c":2},"stream_states":[]}}}`, // all: 3, 2 rejected
			rec("a", `{"$bad":4}`, 1),
			`{"type":"STATE","state":{"data":{"c":3}}}`, // LEGACY: 1, 1 rejected
			rec("b", `{"ok":3}`, 1),
			`{"type":"STATE","state":{"type":"LEGACY","data":{"c":4}}}`, // LEGACY: 1, none rejected
		)
		r := e.run(in, "write", "--config", e.config(map[string]any{"nonconforming_records": "skip"}), "--catalog", cat)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stdout)
		}
		if got, want := r.stateCounts(), "2.0/1.0,3.0/2.0,1.0/1.0,1.0/<nil>"; got != want {
			t.Fatalf("recordCount/rejectedRecordCount %s, want %s", got, want)
		}
		if n := len(e.events("a")) + len(e.events("b")); n != 3 {
			t.Fatalf("%d events, want the 3 that follow Keen's rules", n)
		}
	})
}

func TestBadInputStopsTheSync(t *testing.T) {
	deeper := strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001)
	tests := []struct {
		name, bad, want string
	}{
		{"malformed line", `{"type":"RECORD","record":{`, "Input line 3 is not a valid Airbyte message: the line is not valid JSON"},
		{"not json at all", `hello`, "Input line 3 is not a valid Airbyte message: the line is not JSON"},
		{"json not an object", `["RECORD"]`, "Input line 3 is not a valid Airbyte message: the message is a JSON array, not an object"},
		{"no type", `{"record":{"stream":"a","data":{},"emitted_at":1}}`, "Input line 3 is not a valid Airbyte message: the message has no type"},
		{"a known type in lower case", `{"type":"record","record":{"stream":"a","data":{},"emitted_at":1}}`, `Input line 3 is not a valid Airbyte message: the message type "record" is not one of the protocol's`},
		{"record without stream", `{"type":"RECORD","record":{"data":{},"emitted_at":1}}`, "the record has no stream"},
		{"record without data", `{"type":"RECORD","record":{"stream":"a","emitted_at":1}}`, "the record has no data"},
		{"record without emitted_at", `{"type":"RECORD","record":{"stream":"a","data":{}}}`, "the record has no emitted_at"},
		{"emitted_at not an integer", `{"type":"RECORD","record":{"stream":"a","data":{},"emitted_at":"yesterday"}}`, "the record's emitted_at is not an integer"},
		{"data not an object", rec("a", `[1,2]`, 1), "Input line 3 is not a valid Airbyte message: the record's data is a JSON array"},
		{"invalid UTF-8", rec("a", "{\"s\":\"\xff\xfe\"}", 1), "invalid UTF-8 in string"},
		{"NUL byte in a string", rec("a", "{\"s\":\"a\x00b\"}", 1), "control character in string"},
		{"NUL byte outside strings", "\x00" + rec("a", `{}`, 1), "the line is not JSON"},
		{"data nested 10,001 levels", rec("a", deeper, 1), "JSON nested too deeply"},
		{"unknown stream", rec("nope", `{}`, 1), `Input line 3 is a record of stream "nope", which is not in the configured catalog`},
		{"state not an object", `{"type":"STATE","state":"cursor=5"}`, "the state is a JSON string, not an object"},
		{"stream state without descriptor", `{"type":"STATE","state":{"type":"STREAM","stream":{}}}`, "Input line 3 is not a valid Airbyte message: a STREAM state needs stream.stream_descriptor"},
		{"state type not a string", `{"type":"STATE","state":{"type":1,"data":{}}}`, "Input line 3 is not a valid Airbyte message: the state's type is a JSON number"},
		{"global state without a global object", `{"type":"STATE","state":{"type":"GLOBAL","global":"x"}}`, "Input line 3 is not a valid Airbyte message: a GLOBAL state needs a global object"},
		{"a namespace the catalog does not have", `{"type":"RECORD","record":{"stream":"a","namespace":"other","data":{},"emitted_at":1}}`, `Input line 3 is a record of stream "a", which is not in the configured catalog`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
			in := lines(rec("a", `{"n":1}`, 1), streamState("a", "1"), tt.bad, rec("a", `{"n":2}`, 1), streamState("a", "2"))
			r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
			tr := r.trace(t)
			if r.code != 1 || tr["failure_type"] != "system_error" || !strings.Contains(tr["message"].(string), tt.want) {
				t.Fatalf("exit %d trace %v", r.code, tr)
			}
			if !strings.Contains(tr["message"].(string), "line 3") {
				t.Fatalf("the message must name the line: %v", tr["message"])
			}
			states := r.states()
			if len(states) != 1 || !strings.Contains(fmt.Sprint(states[0]), "cursor:1") {
				t.Fatalf("want exactly the state before the bad line, got %v", states)
			}
			if last := r.lines[len(r.lines)-1]; last["type"] != "TRACE" {
				t.Fatalf("the TRACE must come last: %v", last)
			}
			if n := len(e.events("a")); n != 1 {
				t.Fatalf("%d events landed, want the 1 before the bad line", n)
			}
		})
	}
}

func TestOversizedRecords(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("x", 1_000_100) + `"}`
	in := lines(rec("a", `{"n":1}`, 1), rec("a", big, 1), rec("a", `{"n":2}`, 1), streamState("a", "1"))
	t.Run("fail", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
		r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
		tr := r.trace(t)
		if r.code != 1 || tr["failure_type"] != "system_error" || !strings.Contains(tr["message"].(string), "Input line 2: a record of stream \"a\" is too large: its event of 10001") ||
			!strings.Contains(tr["message"].(string), "over Keen's limit of 1000000") {
			t.Fatalf("exit %d trace %v", r.code, tr)
		}
		if len(r.states()) != 0 {
			t.Fatal("no state may pass a record that did not land")
		}
	})
	t.Run("skip", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
		r := e.run(in, "write", "--config", e.config(map[string]any{"oversized_records": "skip"}), "--catalog", cat)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stdout)
		}
		if got := r.stateCounts(); got != "3.0/1.0" {
			t.Fatalf("recordCount/rejectedRecordCount %s, want one state of 3 records with 1 rejected", got)
		}
		if !strings.Contains(r.logs(), "Skipped the record on input line 2") {
			t.Fatalf("the skip must be logged:\n%s", r.logs())
		}
		if n := len(e.events("a")); n != 2 {
			t.Fatalf("%d events", n)
		}
	})
}

func TestTruncatedLastLine(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	in := lines(rec("a", `{"n":1}`, 1), streamState("a", "1")) + `{"type":"RECORD","record":{"stream":"a","da`
	r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
	tr := r.trace(t)
	if r.code != 1 || tr["failure_type"] != "system_error" || !strings.Contains(tr["message"].(string), "Input line 3 is not a valid Airbyte message") {
		t.Fatalf("exit %d trace %v", r.code, tr)
	}
	if len(r.states()) != 1 {
		t.Fatalf("the state before the cut line must be echoed: %v", r.states())
	}
	// A complete last line without a newline is a line like any other.
	r = e.run(strings.TrimSuffix(lines(rec("a", `{"n":2}`, 1), streamState("a", "2")), "\n"), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 || len(r.states()) != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
}

// TestDeepNesting: data nested 10,000 levels deep is valid JSON and passes
// through as it is (one more level is refused, above).
func TestDeepNesting(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	r := e.run(lines(rec("a", deep, 1), streamState("a", "1")), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 || len(r.states()) != 1 {
		t.Fatalf("exit %d: %.1000s", r.code, r.stdout)
	}
	if n := len(e.events("a")); n != 1 {
		t.Fatalf("%d events", n)
	}
}

func TestDuplicateKeysPassThrough(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append", cursor: []string{"ts"}}))
	r := e.run(lines(rec("a", `{"x":1,"x":2,"ts":"2000-01-01T00:00:00Z","ts":1628080068}`, 1)), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	evs := e.events("a")
	if len(evs) != 1 || keenTS(evs[0]) != "2021-08-04T12:27:48Z" || fmt.Sprint(evs[0]["x"]) != "2" {
		t.Fatalf("the last of duplicate keys counts: %v", evs)
	}
	e.noRejections()
}

// TestHugeRecord: a record of 100 MiB is read through without being held
// (no line is held past 4 MiB) and meets the oversized policy; nothing
// before or after it is lost, and the process stays small. So does a record
// of 4 MiB of property names that all need renaming.
func TestHugeRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a record of 100 MiB")
	}
	limit := int64(128) // MiB of peak memory
	if raceDetector {
		limit = 512
	}
	names := func(size int, format string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; b.Len() < size; i++ {
			fmt.Fprintf(&b, format, i)
		}
		return b.String() + `"z":1}`
	}
	// The 100 MiB record is streamed to the connector, never held here:
	// the test's own memory (the race detector multiplies it) stays small.
	blob := func() io.Reader {
		return io.MultiReader(strings.NewReader(`{"blob":"`), io.LimitReader(repeat('z'), 100<<20), strings.NewReader(`"}`))
	}
	text := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	for _, tt := range []struct {
		name string
		data func() io.Reader
		fits bool // conformed, the event is within Keen's limit
	}{
		{"100 MiB", blob, false},
		{"4 MiB of names to rename", text(names(4<<20-100, `"a.%d":0,`)), false},
		// Escapes written out make each name 10 bytes shorter: 1.5 MB of
		// them conform to 813 KB, so they are conformed and sent.
		{"1.5 MB of names to rename, shorter when renamed", text(names(1500000, `"\u0061\u002e%d":0,`)), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
			input := func() io.Reader {
				first := rec("a", `{"n":1}`, 1) + "\n"
				head, tail, _ := strings.Cut(rec("a", "DATA", 1), "DATA")
				rest := "\n" + lines(rec("a", `{"n":2}`, 1), streamState("a", "1"))
				return io.MultiReader(strings.NewReader(first+head), tt.data(), strings.NewReader(tail+rest))
			}
			r := e.runFrom(input(), "write", "--config", e.config(map[string]any{"oversized_records": "skip"}), "--catalog", cat)
			rejected, events := true, 2
			if tt.fits {
				rejected, events = false, 3
			}
			if r.code != 0 || rejected != strings.Contains(r.stdout, `"rejectedRecordCount":1.0`) || rejected != strings.Contains(r.logs(), "Skipped the record on input line 2") {
				t.Fatalf("exit %d: %s", r.code, r.stdout[max(0, len(r.stdout)-3000):])
			}
			if n := len(e.events("a")); n != events {
				t.Fatalf("%d events, want %d", n, events)
			}
			peak := r.peakMemory()
			t.Logf("peak memory %d MiB", peak)
			if peak < 0 || peak > limit {
				t.Fatalf("peak memory %d MiB, over %d MiB (or not in the summary)", peak, limit)
			}
			if tt.fits {
				return
			}
			r = e.runFrom(input(), "write", "--config", e.config(nil), "--catalog", cat)
			if r.code == 0 || !r.failed("system_error", `Input line 2: a record of stream "a" is too large`) || len(r.states()) != 0 {
				t.Fatalf("oversized_records fail: exit %d: %.2000s", r.code, r.stdout)
			}
		})
	}
}

// repeat is an endless reader of one byte.
type repeat byte

func (c repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// TestLongLines: a line over 4 MiB that is not a record naming its
// stream ends the sync with a system_error that says what it is; no state
// after it is echoed.
func TestLongLines(t *testing.T) {
	blob := strings.Repeat("z", 5<<20)
	tests := []struct{ name, line, want string }{
		{"a state", `{"type":"STATE","state":{"data":{"b":"` + blob + `"}}}`, `Input line 1 is a message of %d bytes of type "STATE": only a RECORD may be over 4 MiB`},
		{"not JSON", `{"type":"RECORD","record":{"stream":"a","data":{"b":"` + blob, `Input line 1 (%d bytes) is not a valid Airbyte message: unexpected end of JSON`},
		{"a record without its stream", `{"type":"RECORD","record":{"data":{"b":"` + blob + `"}}}`, `Input line 1 is a RECORD of %d bytes without a stream name`},
		{"a stream not in the catalog", `{"type":"RECORD","record":{"stream":"b","data":{"b":"` + blob + `"}}}`, `Input line 1 is a record of stream "b", which is not in the configured catalog`},
	}
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(lines(tt.line, streamState("a", "1")), "write", "--config", e.config(map[string]any{"oversized_records": "skip"}), "--catalog", cat)
			want := tt.want
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, len(tt.line))
			}
			if r.code == 0 || !r.failed("system_error", want) || len(r.states()) != 0 {
				t.Fatalf("exit %d: %.2000s", r.code, r.stdout)
			}
		})
	}
}
