package keen

import (
	"time"

	"destination-keen/internal/jsonx"
)

// keenWritable are the members of a source's own keen object that Keen lets
// a producer set; timestamp is always the connector's.
var keenWritable = [...]string{"addons", "location", "uniqueness_token"}

// tokenIndex is uniqueness_token's place in keenWritable.
const tokenIndex = 2

// Shape is what shaping one record's data found.
type Shape struct {
	// DroppedKeenKeys counts members of the source's keen object that Keen
	// would refuse (everything but addons, location, uniqueness_token and
	// timestamp, which the connector sets).
	DroppedKeenKeys int
	// SourceToken: the source set keen.uniqueness_token itself; it was kept.
	SourceToken bool
}

// Record is what the connector takes from one record's data, in one place:
// its keen member and its cursor value, from the members the decoder
// recorded while it validated the data (no second pass), and the traits of
// everything but the keen member.
type Record struct {
	data   []byte
	keen   []byte // the last keen member's value; nil when there is none
	empty  bool
	Cursor []byte // the raw cursor value; nil when missing
	// Key holds the raw values of the primary key's paths, in order; an
	// entry is nil when the record lacks that value.
	Key [][]byte
	// Traits of data outside its keen member: with none, the record follows
	// Keen's rules (see NeedsConform).
	Traits jsonx.Traits
}

// Capture builds the Record of data, a valid JSON object whose members are
// given, for a stream whose cursor is at path cursor and whose primary key
// at paths key (nil for none). The key's values go to keyVals, reused by the
// caller, which must hold len(key) entries. For repeated names the last
// member wins, as in encoding/json.
//
// When members is nil, Capture finds them in data, and the record's Traits
// are traits, those of all of data (keen member included: it may err on the
// side of noting).
func Capture(data []byte, members []jsonx.Member, traits jsonx.Traits, cursor []string, key [][]string, keyVals [][]byte) Record {
	if members == nil {
		return captureScan(data, traits, cursor, key, keyVals)
	}
	c := capturing{r: Record{data: data, empty: true}, cursor: cursor, key: key, keyVals: keyVals}
	clear(keyVals)
	for i := range members {
		c.take(&members[i])
	}
	return c.done()
}

// captureScan is Capture for data whose members were not kept: it finds
// them in data (a closure, kept off the common path, where it would cost
// an allocation per record).
func captureScan(data []byte, traits jsonx.Traits, cursor []string, key [][]string, keyVals [][]byte) Record {
	c := capturing{r: Record{data: data, empty: true}, cursor: cursor, key: key, keyVals: keyVals}
	clear(keyVals)
	jsonx.Members(data, func(m *jsonx.Member) bool {
		c.take(m)
		return true
	})
	c.r.Traits = traits
	return c.done()
}

// capturing is the state of one Capture.
type capturing struct {
	r       Record
	top     []byte // the cursor's top-level member's value
	cursor  []string
	key     [][]string
	keyVals [][]byte
}

func (c *capturing) take(m *jsonx.Member) {
	c.r.empty = false
	if jsonx.KeyIs(m.Key, "keen") {
		c.r.keen = m.Value
		return
	}
	c.r.Traits |= m.Traits
	if len(c.cursor) > 0 && jsonx.KeyIs(m.Key, c.cursor[0]) {
		c.top = m.Value
	}
	for j, k := range c.key {
		if jsonx.KeyIs(m.Key, k[0]) {
			c.keyVals[j] = m.Value // the rest of the path is looked up in done
		}
	}
}

// done looks up the rest of the cursor's and the key's paths.
func (c *capturing) done() Record {
	if c.top != nil {
		c.r.Cursor = jsonx.Lookup(c.top, c.cursor[1:]...)
	}
	if len(c.key) > 0 {
		for j, k := range c.key {
			if c.keyVals[j] != nil && len(k) > 1 {
				c.keyVals[j] = jsonx.Lookup(c.keyVals[j], k[1:]...)
			}
		}
		c.r.Key = c.keyVals[:len(c.key)]
	}
	return c.r
}

// WithData returns the record with data replaced by conformed, which Conform
// made from it: the same members, the keen member unchanged.
func (r Record) WithData(conformed []byte) Record {
	r.data = conformed
	return r
}

// EventLen bounds the length of the event AppendEvent appends for r with
// token and gen (it is exact but for the timestamp's fraction when data has
// no keen member), so that a caller can size the event's buffer once:
// append's growth, in two steps for a record's data and then the members
// spliced in, leaves a buffer up to 60% larger than its event, and a sync
// to far brokers holds tens of thousands of them in flight.
func (r *Record) EventLen(token []byte, gen *Generation) int {
	n := len(r.data) - len(`}`) + len(`"keen":{"timestamp":""}}`) + MaxTimestampLen
	if !r.empty {
		n += len(`,`)
	}
	if gen != nil {
		n += len(`"":,`) + len(gen.Name) + len(gen.Value)
	}
	if token != nil {
		n += len(`,"uniqueness_token":""`) + len(token)
	}
	return n
}

// MaxTimestampLen is the longest text AppendTimestamp writes: four digits
// of year and nine of fraction (2021-08-04T12:27:48.123456789Z).
const MaxTimestampLen = len("2021-08-04T12:27:48.123456789Z")

// AppendEvent appends the record's event to dst: its data with
// keen.timestamp set to ts, and keen.uniqueness_token set to token unless
// token is nil or the source set one itself, and gen's member (when not
// nil) before keen. Everything but the keen member is copied byte for byte.
// Without a keen member the event is data with members spliced in before
// its closing brace; with one, the keen object is rebuilt from the writable
// keys it held.
func (r *Record) AppendEvent(dst []byte, ts time.Time, token []byte, gen *Generation) ([]byte, Shape) {
	var sh Shape
	if r.keen == nil {
		dst = append(dst, r.data[:len(r.data)-1]...)
		if !r.empty {
			dst = append(dst, ',')
		}
		dst = gen.append(dst)
		dst = append(dst, `"keen":{"timestamp":"`...)
		dst = AppendTimestamp(dst, ts)
		dst = append(dst, '"')
		if token != nil {
			dst = append(dst, `,"uniqueness_token":"`...)
			dst = append(dst, token...)
			dst = append(dst, '"')
		}
		return append(dst, "}}"...), sh
	}
	return rebuild(dst, r.data, ts, token, gen, &sh)
}

// Generation is a property every event of a truncating stream carries,
// name and JSON value, so that a later delete can tell the generations of
// a collection apart.
type Generation struct {
	Name  string // a name that follows Keen's rules
	Value []byte // JSON text
}

// append appends the member and a comma; nothing for a nil Generation.
func (g *Generation) append(dst []byte) []byte {
	if g == nil {
		return dst
	}
	dst = append(dst, '"')
	dst = append(dst, g.Name...)
	dst = append(dst, `":`...)
	dst = append(dst, g.Value...)
	return append(dst, ',')
}

// rebuild writes data without its keen member(s), then one keen object with
// the timestamp and the writable keys of the last keen member (JSON's
// last-one-wins for duplicate keys).
func rebuild(dst, data []byte, ts time.Time, token []byte, gen *Generation, sh *Shape) ([]byte, Shape) {
	dst, keen := jsonx.AppendWithout(dst, data, "keen")
	dst = gen.append(dst)
	dst = append(dst, `"keen":{"timestamp":"`...)
	dst = AppendTimestamp(dst, ts)
	dst = append(dst, '"')
	ours := func() {
		if token != nil {
			dst = append(dst, `,"uniqueness_token":"`...)
			dst = append(dst, token...)
			dst = append(dst, '"')
		}
	}
	if jsonx.KindOf(keen) != jsonx.Object {
		ours()
		return append(dst, "}}"...), *sh
	}
	var kept [len(keenWritable)][]byte
	jsonx.Members(keen, func(m *jsonx.Member) bool {
		for i, k := range keenWritable {
			if jsonx.KeyIs(m.Key, k) {
				kept[i] = m.Value
				return true
			}
		}
		if !jsonx.KeyIs(m.Key, "timestamp") {
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
	if kept[tokenIndex] != nil {
		sh.SourceToken = true // the source's own token is kept
	} else {
		ours()
	}
	return append(dst, "}}"...), *sh
}
