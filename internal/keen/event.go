package keen

import (
	"errors"
	"time"

	"destination-keen/internal/jsonx"
)

// keenWritable are the members of a source's own keen object that Keen lets
// a producer set; timestamp is always the connector's.
var keenWritable = [...]string{"addons", "location", "uniqueness_token"}

// ErrDataNotObject means a record's data is not a JSON object.
var ErrDataNotObject = errors.New("record data is not a JSON object")

// Shape is what shaping one record's data found.
type Shape struct {
	// DroppedKeenKeys counts members of the source's keen object that Keen
	// would refuse (everything but addons, location, uniqueness_token and
	// timestamp, which the connector sets).
	DroppedKeenKeys int
	// ReplacedKeen is set when the source's keen was not an object.
	ReplacedKeen bool
}

// Record is one record's data, scanned once: whether it has a keen member
// and the raw cursor value, if the cursor path leads to one.
type Record struct {
	data   []byte
	keen   []byte // the last keen member's value; nil when there is none
	empty  bool
	Cursor []byte // the raw cursor value; nil when missing
}

// Inspect finds, in one pass, the keen member of data and the value at
// cursor (a path of member names; nil for none). data must be valid JSON
// without surrounding white space, as message.Decode guarantees; AppendEvent
// takes untrusted data.
func Inspect(data []byte, cursor []string) (Record, error) {
	r := Record{data: data, empty: true}
	if jsonx.KindOf(data) != jsonx.Object {
		return r, ErrDataNotObject
	}
	var top []byte
	jsonx.MembersValid(data, func(m *jsonx.Member) bool {
		r.empty = false
		if m.KeyIs("keen") {
			r.keen = m.Value
		}
		if len(cursor) > 0 && m.KeyIs(cursor[0]) {
			top = m.Value
		}
		return true
	})
	if top != nil {
		r.Cursor = Lookup(top, cursor[1:])
	}
	return r, nil
}

// RecordOf builds a Record from what a validating pass already found
// (message.Decoder): the data, its keen member's value (nil for none),
// whether it is empty, and the cursor's value (nil for none).
func RecordOf(data, keenValue []byte, empty bool, cursor []byte) Record {
	return Record{data: data, keen: keenValue, empty: empty, Cursor: cursor}
}

// WithData returns the record with data replaced by conformed, which Conform
// made from it: the same members, the keen member unchanged.
func (r Record) WithData(conformed []byte) Record {
	r.data = conformed
	return r
}

// AppendEvent appends the record's event to dst: its data with
// keen.timestamp set to ts. Everything but the keen member is copied byte for
// byte. Without a keen member the event is data with one member spliced in
// before its closing brace; with one, the keen object is rebuilt from the
// writable keys it held.
func (r *Record) AppendEvent(dst []byte, ts time.Time) ([]byte, Shape) {
	var sh Shape
	if r.keen == nil {
		dst = append(dst, r.data[:len(r.data)-1]...)
		if !r.empty {
			dst = append(dst, ',')
		}
		dst = append(dst, `"keen":{"timestamp":"`...)
		dst = AppendTimestamp(dst, ts)
		return append(dst, `"}}`...), sh
	}
	return rebuild(dst, r.data, ts, &sh)
}

// AppendEvent validates data, then is Inspect and Record.AppendEvent in one
// call, for callers without a cursor.
func AppendEvent(dst, data []byte, ts time.Time) ([]byte, Shape, error) {
	if err := jsonx.Valid(data); err != nil {
		return dst, Shape{}, err
	}
	r, err := Inspect(jsonx.TrimSpace(data), nil)
	if err != nil {
		return dst, Shape{}, err
	}
	out, sh := r.AppendEvent(dst, ts)
	return out, sh, nil
}

// rebuild writes data without its keen member(s), then one keen object with
// the timestamp and the writable keys of the last keen member (JSON's
// last-one-wins for duplicate keys).
func rebuild(dst, data []byte, ts time.Time, sh *Shape) ([]byte, Shape) {
	dst, keen := jsonx.AppendWithout(dst, data, "keen")
	dst = append(dst, `"keen":{"timestamp":"`...)
	dst = AppendTimestamp(dst, ts)
	dst = append(dst, '"')
	if jsonx.KindOf(keen) != jsonx.Object {
		sh.ReplacedKeen = true
		return append(dst, "}}"...), *sh
	}
	var kept [len(keenWritable)][]byte
	jsonx.MembersValid(keen, func(m *jsonx.Member) bool {
		for i, k := range keenWritable {
			if m.KeyIs(k) {
				kept[i] = m.Value
				return true
			}
		}
		if !m.KeyIs("timestamp") {
			sh.DroppedKeenKeys++
		}
		return true
	})
	for i, k := range keenWritable {
		if kept[i] != nil {
			dst = append(dst, `,"`...)
			dst = append(dst, k...)
			dst = append(dst, `":`...)
			dst = append(dst, kept[i]...)
		}
	}
	return append(dst, "}}"...), *sh
}

// Lookup returns the raw value at path in the valid object data, or nil when
// a step is missing or not an object. The last member of a name wins.
func Lookup(data []byte, path []string) []byte {
	cur := data
	for _, name := range path {
		if jsonx.KindOf(cur) != jsonx.Object {
			return nil
		}
		var found []byte
		jsonx.MembersValid(cur, func(m *jsonx.Member) bool {
			if m.KeyIs(name) {
				found = m.Value
			}
			return true
		})
		if found == nil {
			return nil
		}
		cur = found
	}
	return cur
}
