package keen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"destination-keen/internal/jsonx"
	"destination-keen/internal/message"
	"destination-keen/tools/keenlocal/emulator"
)

func TestCollectionName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Ünïcödé Stream!", "Unicode_Stream"},
		{"orders.v2", "orders.v2"},
		{"_airbyte_raw", "airbyte_raw"},
		{"users", "users"},
		{"my stream\tname\nx", "my_stream_name_x"},
		{"$price (usd)*+,", "price_usd"},
		{"..hidden..", "hidden"},
		{"._.x", "x"},
		{"façade-ÅNGSTRÖM", "facade-ANGSTROM"},
		{"日本語 stream", "stream"},
		{strings.Repeat("a", 63) + ".b", strings.Repeat("a", 63)},
		{strings.Repeat("x", 70), strings.Repeat("x", 64)},
		{"trailing.", "trailing"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := CollectionName(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("CollectionName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if err := emulator.CheckCollection(got); err != nil {
				t.Fatalf("%q: %v", got, err)
			}
		})
	}
	for _, in := range []string{"", "$$$", "___", "...", "日本語"} {
		if got, err := CollectionName(in); err == nil {
			t.Errorf("CollectionName(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzCollectionName(f *testing.F) {
	for _, s := range []string{"Ünïcödé Stream!", "orders.v2", "_airbyte_raw", "$$$", " . _", strings.Repeat("é", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := CollectionName(in)
		if err != nil {
			if got != "" {
				t.Fatalf("error with a name %q", got)
			}
			return
		}
		if err := emulator.CheckCollection(got); err != nil {
			t.Fatalf("CollectionName(%q) = %q breaks Keen's rules: %v", in, got, err)
		}
		if again, _ := CollectionName(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, got, again)
		}
	})
}

func TestParseCursor(t *testing.T) {
	tests := []struct {
		raw  string
		want string // "" means no time: fall back to emitted_at
	}{
		// The Java connector's own cases.
		{`"1999/12/15 14:44 utc"`, "1999-12-15T14:44:00Z"},
		{`1628080068`, "2021-08-04T12:27:48Z"},
		{`1628081113151`, "2021-08-04T12:45:13.151Z"},
		{`"1628080068"`, "2021-08-04T12:27:48Z"},
		{`250000`, ""},
		{`"some_text"`, ""},
		// ISO and friends.
		{`"2021-08-04T12:27:48Z"`, "2021-08-04T12:27:48Z"},
		{`"2021-08-04t12:27:48z"`, "2021-08-04T12:27:48Z"},
		{`"z"`, ""},
		{`"12z"`, ""},
		{`"2021-08-04 12:27:48.5+02:00"`, "2021-08-04T10:27:48.500Z"},
		{`"2021-02-29T00:00:00Z"`, ""},
		{`"2021-08-04T24:00:00Z"`, ""},
		{`"2021-08-04T12:27:48.120Z"`, "2021-08-04T12:27:48.120Z"},
		{`"2021-08-04T12:27:48.1234Z"`, "2021-08-04T12:27:48.123400Z"},
		{`"2021-08-04T12:27:48.000000001Z"`, "2021-08-04T12:27:48.000000001Z"},
		{`"2021-08-04T14:27:48+02:00"`, "2021-08-04T12:27:48Z"},
		{`"2021-08-04T12:27:48"`, "2021-08-04T12:27:48Z"},
		{`"2021-08-04 12:27:48.151+00"`, "2021-08-04T12:27:48.151Z"},
		{`"2021-08-04 12:27"`, "2021-08-04T12:27:00Z"},
		{`"2021-08-04"`, "2021-08-04T00:00:00Z"},
		{`"2021/08/04"`, "2021-08-04T00:00:00Z"},
		{`"Wed, 04 Aug 2021 12:27:48 GMT"`, "2021-08-04T12:27:48Z"},
		{`"Wed, 04 Aug 2021 14:27:48 +0200"`, "2021-08-04T12:27:48Z"},
		{`"Wed Aug  4 12:27:48 2021"`, "2021-08-04T12:27:48Z"},
		{`"Wed, 04 Aug 2021 12:27:48 PST"`, ""}, // unknown abbreviation: no guessing
		{`1628080068.5`, "2021-08-04T12:27:48.500Z"},
		// Fractions read exactly from the digits, not through a float64.
		{`1674485468.853`, "2023-01-23T14:51:08.853Z"},
		{`"1674485468.853"`, "2023-01-23T14:51:08.853Z"},
		{`1674485468.123456789`, "2023-01-23T14:51:08.123456789Z"},
		{`1674485468853.5`, "2023-01-23T14:51:08.853500Z"},
		{`1.674485468853e12`, "2023-01-23T14:51:08.853Z"},
		{`1.628080068e9`, "2021-08-04T12:27:48Z"},
		// The seconds/milliseconds boundary: above 1e10 is milliseconds.
		{`5e10`, "1971-08-02T16:53:20Z"},
		{`50000000000`, "1971-08-02T16:53:20Z"},
		{`10000000000`, "2286-11-20T17:46:40Z"},
		{`10000000001`, "1970-04-26T17:46:40.001Z"},
		{`1e9`, "2001-09-09T01:46:40Z"},
		{`999999999.9`, ""},
		{`1e20`, ""}, // beyond year 9999
		{`-1628080068`, ""},
		{`null`, ""},
		{`true`, ""},
		{`{"a":1}`, ""},
		{`"2021-13-04"`, ""},
		{`""`, ""},
		// Years outside 0001-9999 are not times, however they are written.
		{`"0000-06-01T00:00:00Z"`, ""},
		{`"0000-06-01"`, ""},
		{`"0000-06-01 10:00"`, ""},
		{`"0000/06/01"`, ""},
		{`"0001-01-01T00:00:00+01:00"`, ""}, // year 0 in UTC
		{`"0001-01-01T00:00:00Z"`, "0001-01-01T00:00:00Z"},
		{`"9999-12-31T23:59:59.999Z"`, "9999-12-31T23:59:59.999Z"},
		{`"9999-12-31T23:00:00-02:00"`, ""}, // year 10000 in UTC
		{`"10000-01-01T00:00:00Z"`, ""},
		{`"Sat, 01 Jan 0000 00:00:00 GMT"`, ""},
	}
	var p Parser
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, ok := p.Parse([]byte(tt.raw))
			if tt.want == "" {
				if ok {
					t.Fatalf("parsed as %v, want a fallback", got)
				}
				return
			}
			if !ok || string(AppendTimestamp(nil, got)) != tt.want {
				t.Fatalf("got %v %v, want %s", got, ok, tt.want)
			}
		})
	}
}

func TestAppendTimestamp(t *testing.T) {
	for ms, want := range map[int64]string{
		1602637789200: "2020-10-14T01:09:49.200Z",
		1602637789000: "2020-10-14T01:09:49Z",
		1628081113151: "2021-08-04T12:45:13.151Z",
	} {
		if got := string(AppendTimestamp(nil, time.UnixMilli(ms))); got != want {
			t.Errorf("%d: %s, want %s", ms, got, want)
		}
	}
}

func FuzzParseString(f *testing.F) {
	for _, s := range []string{"1999/12/15 14:44 utc", "1628080068", "2021-08-04T12:27:48Z", "some_text", "1e300", "2021-08-04 12:27:48.151+00"} {
		f.Add(s)
	}
	var p Parser
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := p.ParseString(s)
		if !ok {
			return
		}
		out := string(AppendTimestamp(nil, got))
		if y := got.Year(); y < 1 || y > 9999 || !strings.HasSuffix(out, "Z") {
			t.Fatalf("ParseString(%q) = %s, out of Keen's range", s, out)
		}
		back, err := time.Parse(time.RFC3339Nano, out)
		if err != nil || !back.Equal(got) {
			t.Fatalf("%s does not read back: %v", out, err)
		}
	})
}

var ts = time.Date(2021, 8, 4, 12, 27, 48, 0, time.UTC)

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name, data, want string
		dropped          int
	}{
		{"plain", `{"a":1}`, `{"a":1,"keen":{"timestamp":"2021-08-04T12:27:48Z"}}`, 0},
		{"empty", `{}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z"}}`, 0},
		{"exact bytes", `{"big":18446744073709551615,"s":"a\nb\r\u2028 é","f":1.50}`,
			`{"big":18446744073709551615,"s":"a\nb\r\u2028 é","f":1.50,"keen":{"timestamp":"2021-08-04T12:27:48Z"}}`, 0},
		{"keen merged", `{"a":1,"keen":{"timestamp":"x","addons":[{"name":"n"}],"id":"1","location":{"coordinates":[1,2]},"created_at":"y","uniqueness_token":"u"},"b":2}`,
			`{"a":1,"b":2,"keen":{"timestamp":"2021-08-04T12:27:48Z","addons":[{"name":"n"}],"location":{"coordinates":[1,2]},"uniqueness_token":"u"}}`, 2},
		{"keen not an object", `{"keen":"x","a":1}`, `{"a":1,"keen":{"timestamp":"2021-08-04T12:27:48Z"}}`, 0},
		{"keen alone", `{"keen":{}}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z"}}`, 0},
		{"duplicate keen, last wins", `{"keen":{"addons":1},"keen":{"location":2}}`, `{"keen":{"timestamp":"2021-08-04T12:27:48Z","location":2}}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := capture([]byte(tt.data), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, sh := r.AppendEvent([]byte("prefix:"), ts, nil, nil)
			if string(got) != "prefix:"+tt.want {
				t.Fatalf("got  %s\nwant prefix:%s", got, tt.want)
			}
			if sh.DroppedKeenKeys != tt.dropped {
				t.Fatalf("shape %+v, want dropped %d", sh, tt.dropped)
			}
		})
	}
}

// TestEventLen: exact for data without a keen member and a timestamp of
// nine fraction digits, with and without a token and a generation, and an
// upper bound otherwise.
func TestEventLen(t *testing.T) {
	nano := ts.Add(123456789)
	token, gen := []byte("dk2_0123456789"), &Generation{Name: "_airbyte_generation_id", Value: []byte("12")}
	for _, data := range []string{`{"a":1}`, `{}`, `{"keen":{"location":{},"id":1},"b":"x"}`, `{"keen":{"uniqueness_token":"mine"}}`, `{"keen":5}`} {
		for _, tc := range []struct {
			name  string
			token []byte
			gen   *Generation
		}{{"bare", nil, nil}, {"token", token, nil}, {"generation", nil, gen}, {"both", token, gen}} {
			t.Run(data+" "+tc.name, func(t *testing.T) {
				r, err := capture([]byte(data), nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, at := range []time.Time{nano, ts} {
					got, _ := r.AppendEvent(nil, at, tc.token, tc.gen)
					n := r.EventLen(tc.token, tc.gen)
					exact := at == nano && !strings.Contains(data, "keen")
					if len(got) > n || exact && len(got) != n {
						t.Fatalf("%s: %d bytes, EventLen %d (exact: %v)", got, len(got), n, exact)
					}
				}
			})
		}
	}
}

// capture decodes data as the decoder does for a RECORD, and captures its
// Record for cursor; it checks that capturing without the decoder's
// members (as for data too wide to keep them) finds the same.
func capture(data []byte, cursor []string) (Record, error) {
	var m message.Message
	line := `{"type":"RECORD","record":{"stream":"s","emitted_at":1,"data":` + string(data) + `}}`
	if err := message.Decode([]byte(line), &m); err != nil {
		return Record{}, err
	}
	r := Capture(m.Data, m.Members, m.Traits, cursor, nil, nil)
	s := Capture(m.Data, nil, m.Traits, cursor, nil, nil)
	if s.Traits&r.Traits != r.Traits {
		return r, fmt.Errorf("traits %b without members, %b with", s.Traits, r.Traits)
	}
	s.Traits = r.Traits
	if !reflect.DeepEqual(r, s) {
		return r, fmt.Errorf("captured without members %+v, with %+v", s, r)
	}
	return r, nil
}

func TestCaptureCursor(t *testing.T) {
	data := []byte(`{"id":1,"meta":{"updated":"2021-08-04T12:27:48Z","x":[1]},"updated_at":1628080068}`)
	for _, tt := range []struct {
		path []string
		want string
	}{
		{[]string{"updated_at"}, "1628080068"},
		{[]string{"meta", "updated"}, `"2021-08-04T12:27:48Z"`},
		{[]string{"meta", "missing"}, ""},
		{[]string{"id", "deeper"}, ""},
		{[]string{"nope"}, ""},
		{nil, ""},
	} {
		r, err := capture(data, tt.path)
		if err != nil || string(r.Cursor) != tt.want {
			t.Errorf("cursor %v = %q, %v; want %q", tt.path, r.Cursor, err, tt.want)
		}
	}
}

// FuzzAppendEvent: whatever the data, the event is one valid JSON object
// whose members other than keen equal the input's, with a keen.timestamp.
func FuzzAppendEvent(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"keen":{"id":1,"addons":[]},"x":"y"}`, `{"keen":5}`, `{"n":18446744073709551615}`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			// capture places data in a line: text that is not one JSON
			// value may close the data and add members of its own
			// (`{},"":""`), and the record's data is then another text.
			return
		}
		r, err := capture(data, nil)
		if err != nil {
			return
		}
		out, _ := r.AppendEvent(nil, ts, nil, nil)
		if len(out) > r.EventLen(nil, nil) {
			t.Fatalf("%q: event of %d bytes, EventLen %d", data, len(out), r.EventLen(nil, nil))
		}
		token, gen := []byte("dk2_0123456789abcdef"), &Generation{Name: "airbyte_generation", Value: []byte("12")}
		if full, _ := r.AppendEvent(nil, ts.Add(123456789), token, gen); len(full) > r.EventLen(token, gen) {
			t.Fatalf("%q: event with token and generation of %d bytes, EventLen %d", data, len(full), r.EventLen(token, gen))
		}
		var in, ev map[string]json.RawMessage
		if err := json.Unmarshal(data, &in); err != nil {
			t.Fatalf("accepted data encoding/json rejects: %q: %v", data, err)
		}
		if err := json.Unmarshal(out, &ev); err != nil {
			t.Fatalf("event is not a JSON object: %q: %v", out, err)
		}
		delete(in, "keen")
		keen := ev["keen"]
		delete(ev, "keen")
		if len(in) != len(ev) {
			t.Fatalf("members differ: %q vs %q", data, out)
		}
		for k, v := range in {
			if !bytes.Equal(compact(t, v), compact(t, ev[k])) {
				t.Fatalf("member %q changed: %s -> %s", k, v, ev[k])
			}
		}
		var k struct {
			Timestamp string `json:"timestamp"`
		}
		if err := json.Unmarshal(keen, &k); err != nil || k.Timestamp != "2021-08-04T12:27:48Z" {
			t.Fatalf("keen %s: %v", keen, err)
		}
	})
}

func compact(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzAppendTimestamp(f *testing.F) {
	f.Add(int64(1628081113151), int64(0))
	f.Add(int64(-62135596800), int64(999999999))
	f.Add(int64(253402300799), int64(1000))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		tm := time.Unix(sec%253402300800, nsec%1e9).UTC()
		if y := tm.Year(); y < 1 || y > 9999 {
			return
		}
		got := string(AppendTimestamp(nil, tm))
		back, err := time.Parse(time.RFC3339Nano, got)
		if err != nil || !back.Equal(tm) {
			t.Fatalf("%v -> %s -> %v %v", tm, got, back, err)
		}
	})
}

// FuzzRFC3339 holds the hand-written parser to package time's answers.
// TestCaptureTraits: the source's keen member has rules of its own and does
// not count towards the record's traits; everything else does.
func TestCaptureTraits(t *testing.T) {
	for _, tt := range []struct {
		data string
		want jsonx.Traits
	}{
		{`{"a":1,"keen":{"addons":[{"a.b":1}],"$x":1}}`, 0},
		{`{"x":{"keen":{"addons":[{}]}}}`, jsonx.NestedArray},
		{`{"a.b":1,"keen":{}}`, jsonx.OddKey},
		{`{"keen":{},"keen":[{}],"b":[[1]]}`, jsonx.NestedArray},
	} {
		r, err := capture([]byte(tt.data), nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Traits != tt.want {
			t.Errorf("%s: traits %b, want %b", tt.data, r.Traits, tt.want)
		}
	}
}

// The hand-written timestamp code next to the standard library it replaces,
// in the same run: it stays only while it wins by a clear margin.
func BenchmarkAppendTimestamp(b *testing.B) {
	t := time.UnixMilli(1709288100123).UTC()
	buf := make([]byte, 0, 64)
	b.Run("ours", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendTimestamp(buf[:0], t)
		}
	})
	// The same output with package time: a layout per fraction width.
	b.Run("stdlib", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			layout := "2006-01-02T15:04:05Z"
			switch ns := t.Nanosecond(); {
			case ns == 0:
			case ns%1e6 == 0:
				layout = "2006-01-02T15:04:05.000Z"
			case ns%1e3 == 0:
				layout = "2006-01-02T15:04:05.000000Z"
			default:
				layout = "2006-01-02T15:04:05.000000000Z"
			}
			buf = t.UTC().AppendFormat(buf[:0], layout)
		}
	})
	if string(AppendTimestamp(nil, t)) != string(t.AppendFormat(nil, "2006-01-02T15:04:05.000Z")) {
		b.Fatal("the two ways differ")
	}
}
