package pipeline

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"destination-keen/internal/keen"
	"destination-keen/internal/message"

	"github.com/valyala/fastjson"
)

// A RECORD line of about 480 bytes, shaped like the load generator's.
var benchLine = []byte(`{"type":"RECORD","record":{"namespace":"shop","stream":"bench","data":{"id":123456,"user":{"id":"u-23456","email":"someone.23456@example.com","plan":"pro","country":"DE","signup":"2021-04-01T10:00:00Z"},"page":{"path":"/docs/getting-started/install","referrer":"https://www.example.org/search?q=keen+analytics","title":"Install | Docs"},"device":{"os":"iOS","version":"17.1","model":"iPhone15,2","app":"4.12.0"},"amount":19.99,"currency":"EUR","tags":["web","campaign-42","beta"],"updated_at":"2024-03-01T10:15:00.123Z"},"emitted_at":1700000000000}}`)

// benchLineNonconforming is benchLine with the shapes real sources send
// that Keen drops: an array of objects, a name with '.', one with '$'.
var benchLineNonconforming = []byte(`{"type":"RECORD","record":{"namespace":"shop","stream":"bench","data":{"id":123456,"user":{"id":"u-23456","email":"someone.23456@example.com","plan":"pro","$country":"DE","signup":"2021-04-01T10:00:00Z"},"page":{"path":"/docs/getting-started/install","referrer":"https://www.example.org/search?q=keen+analytics","title":"Install | Docs"},"fee_details":[{"amount":1999,"type":"stripe_fee"},{"amount":25,"type":"tax"}],"amount.eur":19.99,"tags":["web","campaign-42","beta"],"updated_at":"2024-03-01T10:15:00.123Z"},"emitted_at":1700000000000}}`)

// connectorPath is what a worker does per record of line: decode, capture,
// conform when the record needs it (changes: how many changes it must
// need), derive a token when tokens is set, parse the cursor, shape.
func connectorPath(b *testing.B, line []byte, tokens bool, changes int) {
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	var (
		m       message.Message
		p       keen.Parser
		tk      keen.Tokener
		scratch []byte
		buf     = make([]byte, 0, 1024)
		tokBuf  = make([]byte, 0, keen.TokenLen)
		cursor  = []string{"updated_at"}
		key     [][]string
		keyVals = make([][]byte, 1)
	)
	if tokens {
		key = [][]string{{"id"}}
	}
	for b.Loop() {
		if err := message.Decode(line, &m); err != nil {
			b.Fatal(err)
		}
		rec := keen.Capture(m.Data, m.Members, m.Traits, cursor, key, keyVals[:len(key)])
		if keen.NeedsConform(rec.Traits) != (changes > 0) {
			b.Fatalf("traits %b for a record that needs %d changes", rec.Traits, changes)
		}
		if changes > 0 {
			var cs []keen.Change
			if scratch, cs = keen.Conform(scratch[:0], m.Data); len(cs) != changes {
				b.Fatalf("%d changes, want %d", len(cs), changes)
			}
			rec = rec.WithData(scratch)
		}
		var tok []byte
		if tokens {
			tokBuf = tk.Append(tokBuf[:0], &keen.TokenInput{Collection: "bench", Key: rec.Key, Cursor: rec.Cursor})
			tok = tokBuf
		}
		ts, ok := p.Parse(rec.Cursor)
		if !ok {
			b.Fatal("cursor not parsed")
		}
		if n := rec.EventLen(tok, nil); cap(buf) < n {
			buf = slices.Grow([]byte(nil), n) // as shapeRecord sizes a buffer
		}
		buf, _ = rec.AppendEvent(buf[:0], ts, tok, nil)
	}
}

// BenchmarkRecordPath measures what the reading goroutine does per record
// (decode, find the cursor, parse it, shape the event), next to the plain
// encoding/json way in the same run as the baseline.
func BenchmarkRecordPath(b *testing.B) {
	b.Run("connector", func(b *testing.B) { connectorPath(b, benchLine, false, 0) })
	// The same with a uniqueness token from a primary key and the cursor.
	b.Run("connector-token", func(b *testing.B) { connectorPath(b, benchLine, true, 0) })
	// A record of the same size that breaks Keen's rules (an array of
	// objects, a dotted and a $ name): conformed before it is shaped.
	b.Run("connector-conformed", func(b *testing.B) { connectorPath(b, benchLineNonconforming, false, 3) })
	// A maintained raw-JSON library doing the same job, for the reason jsonx
	// is hand-written: the line is checked for UTF-8, fastjson validates and
	// parses it, the record's members are looked up, data is written back out
	// (fastjson keeps number texts, so big integers survive; strings it
	// writes again, escapes its own way) with keen.timestamp spliced in.
	b.Run("fastjson-baseline", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchLine)))
		var fp fastjson.Parser
		var p keen.Parser
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			// fastjson passes invalid UTF-8 through; the connector refuses it.
			if !utf8.Valid(benchLine) {
				b.Fatal("invalid UTF-8")
			}
			v, err := fp.ParseBytes(benchLine)
			if err != nil {
				b.Fatal(err)
			}
			if string(v.GetStringBytes("type")) != "RECORD" || len(v.GetStringBytes("record", "stream")) == 0 || v.GetInt64("record", "emitted_at") == 0 {
				b.Fatal("not a record")
			}
			data, err := v.Get("record", "data").Object()
			if err != nil {
				b.Fatal(err)
			}
			var cursor []byte
			data.Visit(func(k []byte, v *fastjson.Value) {
				if string(k) == "updated_at" {
					cursor = v.MarshalTo(cursor[:0])
				}
			})
			ts, ok := p.Parse(cursor)
			if !ok {
				b.Fatal("cursor not parsed")
			}
			buf = data.MarshalTo(buf[:0])
			buf = append(buf[:len(buf)-1], `,"keen":{"timestamp":"`...)
			buf = keen.AppendTimestamp(buf, ts)
			buf = append(buf, `"}}`...)
		}
	})
	b.Run("encoding-json-baseline", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchLine)))
		for b.Loop() {
			var msg struct {
				Type   string `json:"type"`
				Record struct {
					Stream    string         `json:"stream"`
					Data      map[string]any `json:"data"`
					EmittedAt int64          `json:"emitted_at"`
				} `json:"record"`
			}
			if err := json.Unmarshal(benchLine, &msg); err != nil {
				b.Fatal(err)
			}
			ts, err := time.Parse(time.RFC3339Nano, msg.Record.Data["updated_at"].(string))
			if err != nil {
				b.Fatal(err)
			}
			msg.Record.Data["keen"] = map[string]any{"timestamp": ts.UTC().Format(time.RFC3339Nano)}
			if _, err := json.Marshal(msg.Record.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
