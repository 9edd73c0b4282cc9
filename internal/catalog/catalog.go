// Package catalog compiles the configured catalog, once, before any network
// call, into one Plan per stream: its Keen collection (from the
// destination_object_name the platform set, else the stream's name),
// whether the sync truncates it, and where its keen.timestamp comes from.
// Every problem is reported together as one config_error. The catalog is
// read as liberally as Airbyte's own destinations read it: members the
// connector never reads (schemas.NotRead, unknown members, enum values of
// later releases where it does not act on them) are not checked; what it
// acts on is. The per-record path only looks plans up; it never reads the
// catalog or a JSON schema.
package catalog

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"destination-keen/gen/protocol"
	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/keen"
	"destination-keen/schemas"
)

// CursorKind is what the stream's JSON schema says about its cursor.
type CursorKind int

// Cursor kinds. Values are parsed by what they hold in every case; the kind
// is reported in the plan log so that a user can see what was expected.
const (
	CursorUnknown CursorKind = iota // no usable schema: decided per value
	CursorDate                      // a string with format date-time or date
	CursorEpoch                     // an integer or number
	CursorString                    // a string without a date format
)

func (k CursorKind) String() string {
	return [...]string{"decided per value", "date-time string", "epoch number", "string"}[k]
}

// Plan is what the connector does with one configured stream.
type Plan struct {
	Index      int // position in Catalog.Plans
	Stream     string
	Namespace  string
	Collection string
	// ObjectName is the destination_object_name the platform set: the name
	// the user chose for the destination object, which Collection follows;
	// "" when the platform set none (Collection follows the stream's name).
	ObjectName string
	// Truncate: the sync replaces the collection's events: its events carry
	// Generation in GenerationProperty, and once the stream has ended well
	// the events of every other generation are deleted.
	Truncate bool
	// Generation identifies this sync's events of a truncating stream: the
	// catalog's generation_id, else its sync_id, else a number drawn for
	// this run; a decimal integer.
	Generation string
	// Reason says why the stream truncates or appends, for the log.
	Reason string
	// Cursor is the path to the cursor in each record (the configured
	// cursor_field); nil for none.
	Cursor     []string
	CursorKind CursorKind
	// TimestampFromCursor: keen.timestamp is read from the cursor
	// (infer_timestamp on, and a cursor); else every event takes its
	// record's emitted_at.
	TimestampFromCursor bool
	// Token says how the stream's events get a keen.uniqueness_token.
	Token TokenRule
}

// TokenKind is what a stream's uniqueness tokens are derived from.
type TokenKind uint8

// Token kinds.
const (
	TokenNone   TokenKind = iota // no token
	TokenKey                     // the primary key's values, the cursor (or the sync) and the record's content
	TokenRecord                  // the whole record (uniqueness_token: all_streams, no primary key)
)

// TokenRule is how one stream's events get a uniqueness token.
type TokenRule struct {
	Kind TokenKind
	// Key is the primary key: the configured primary_key, else the stream's
	// source_defined_primary_key; paths of member names.
	Key [][]string
	// Snapshot: a full-refresh stream, whose every sync sends every row
	// again: tokens hash the sync's ID, so that the attempts of one sync
	// share them and the next sync's rows are new events.
	Snapshot bool
	// SyncID is the catalog's sync_id in decimal; "" when it has none.
	SyncID string
	// Generation is the stream's generation_id in decimal, hashed for a
	// truncating stream so that a new generation's events are not taken
	// for duplicates of the old ones; "" otherwise.
	Generation string
	// Why says in words what the tokens come from, for the log.
	Why string
}

// Name is the stream's name with its namespace, for messages.
func (p *Plan) Name() string {
	if p.Namespace != "" {
		return p.Namespace + "." + p.Stream
	}
	return p.Stream
}

// Catalog is the compiled catalog.
type Catalog struct {
	Plans  []*Plan
	byKey  map[key]*Plan
	byName map[string][]*Plan
	// Warnings are things the user should know that do not stop the sync.
	Warnings []string
}

type key struct{ namespace, stream string }

// Lookup returns the plan of a record's (or a state's, or a status's)
// stream, by one rule: the stream of that name and namespace; or, for one
// that names no namespace, the only stream of that name in the catalog
// (sources that leave the namespace out of their records exist: the
// Postgres source's records of a "public" stream). A namespace the catalog
// does not have for that name matches nothing, however many streams bear
// the name; so does a name without namespace that several namespaces share.
// nil means the stream is not in the catalog.
func (c *Catalog) Lookup(namespace, stream string) *Plan {
	if p := c.byKey[key{namespace, stream}]; p != nil {
		return p
	}
	if ps := c.byName[stream]; namespace == "" && len(ps) == 1 {
		return ps[0]
	}
	return nil
}

// GenerationProperty is the property that carries a truncating stream's
// generation in each of its events; Airbyte's own destinations name their
// column the same. It follows Keen's rules for property names.
const GenerationProperty = "_airbyte_generation_id"

// Options are what the user's config says about compiling the catalog.
type Options struct {
	InferTimestamp bool               // keen.timestamp from the cursor
	Tokens         config.TokenPolicy // uniqueness tokens
	// RunGeneration is the generation of truncating streams when the
	// catalog has neither generation_id nor sync_id; default a random
	// positive number drawn once per run.
	RunGeneration string
}

func (o Options) runGeneration() string {
	if o.RunGeneration != "" {
		return o.RunGeneration
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatUint(binary.BigEndian.Uint64(b[:])>>11, 10) // below 2^53: exact in JSON readers
}

// OptionsOf returns the catalog options of a config.
func OptionsOf(cfg *config.Config) Options {
	return Options{InferTimestamp: cfg.InferTimestamp, Tokens: cfg.Tokens}
}

// Load reads (at most config.MaxCatalogBytes, until ctx ends) and compiles
// the catalog file at path.
func Load(ctx context.Context, path string, o Options) (*Catalog, error) {
	b, err := config.ReadFile(ctx, path, "catalog", config.MaxCatalogBytes)
	if err != nil {
		return nil, err
	}
	return Compile(b, o)
}

// Compile validates doc against ConfiguredAirbyteCatalog and compiles it.
func Compile(doc []byte, o Options) (*Catalog, error) {
	// Read liberally: a sync mode of a later release in a field the sync
	// never reads is no reason to fail; the ones it acts on are checked
	// below, by name.
	if err := schemas.ValidateLenient("ConfiguredAirbyteCatalog", doc); err != nil {
		if se, ok := errors.AsType[*schemas.SyntaxError](err); ok {
			return nil, failure.Configf(nil, "The catalog is %s", se.Error())
		}
		var lines []string
		for _, p := range schemas.Problems(err) {
			lines = append(lines, p.String())
		}
		if len(lines) == 0 {
			return nil, failure.Configf(err, "The catalog could not be validated")
		}
		return nil, failure.Configf(nil, "The catalog is invalid: %s", strings.Join(lines, "; "))
	}
	var cat protocol.ConfiguredAirbyteCatalog
	if err := json.Unmarshal(doc, &cat); err != nil {
		return nil, failure.Systemf(err, "The catalog passed validation but could not be decoded")
	}
	c := &Catalog{byKey: map[key]*Plan{}, byName: map[string][]*Plan{}}
	var problems []string
	for i := range cat.Streams {
		p, err := compileStream(&cat.Streams[i], o)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		k := key{p.Namespace, p.Stream}
		if c.byKey[k] != nil {
			problems = append(problems, fmt.Sprintf("stream %q appears twice in the catalog", p.Name()))
			continue
		}
		c.byKey[k] = p
		c.byName[p.Stream] = append(c.byName[p.Stream], p)
		p.Index = len(c.Plans)
		c.Plans = append(c.Plans, p)
	}
	problems = append(problems, c.checkCollisions()...)
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, failure.Configf(nil, "The catalog cannot be synced to Keen: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

func compileStream(s *protocol.ConfiguredAirbyteStream, o Options) (*Plan, error) {
	p := &Plan{Stream: s.Stream.Name}
	if s.Stream.Namespace != nil {
		p.Namespace = *s.Stream.Namespace
	}
	named, what := p.Stream, ""
	if s.DestinationObjectName != nil && *s.DestinationObjectName != "" {
		p.ObjectName = *s.DestinationObjectName
		named, what = p.ObjectName, fmt.Sprintf(" (destination_object_name %q)", p.ObjectName)
	}
	coll, err := keen.CollectionName(named)
	if err != nil {
		return nil, fmt.Errorf("stream %q%s: %w", p.Name(), what, err)
	}
	p.Collection = coll

	if !slices.Contains(protocol.SyncModeValues, s.SyncMode) {
		return nil, fmt.Errorf("stream %q: sync mode %q is not one this connector knows (%s)", p.Name(), s.SyncMode, joinValues(protocol.SyncModeValues))
	}
	gen, minGen := s.GenerationID, s.MinimumGenerationID
	switch s.DestinationSyncMode {
	case protocol.DestinationSyncModeOverwrite:
		p.Truncate, p.Reason = true, string(protocol.DestinationSyncModeOverwrite)
	case protocol.DestinationSyncModeAppend:
		if gen != nil && minGen != nil && *gen > 0 && *gen == *minGen {
			p.Truncate, p.Reason = true, fmt.Sprintf("refresh (generation %d)", *gen)
		} else {
			p.Reason = "append"
		}
	default:
		if !slices.Contains(protocol.DestinationSyncModeValues, s.DestinationSyncMode) {
			return nil, fmt.Errorf("stream %q: destination sync mode %q is not one this connector knows (%s); use append or overwrite", p.Name(), s.DestinationSyncMode, joinValues(protocol.DestinationSyncModeValues))
		}
		return nil, fmt.Errorf("stream %q: destination sync mode %q is not supported by Keen (use append or overwrite)", p.Name(), s.DestinationSyncMode)
	}

	if p.Truncate {
		switch {
		case s.GenerationID != nil:
			p.Generation = strconv.FormatInt(int64(*s.GenerationID), 10)
		case s.SyncID != nil:
			p.Generation = strconv.FormatInt(int64(*s.SyncID), 10)
		default:
			p.Generation = o.runGeneration()
		}
	}
	if len(s.CursorField) > 0 {
		p.Cursor = slices.Clone(s.CursorField)
		p.CursorKind = cursorKind(s.Stream.JSONSchema, p.Cursor)
		p.TimestampFromCursor = o.InferTimestamp
	}
	p.Token = tokenRule(s, p, o.Tokens)
	return p, nil
}

// tokenRule decides how a stream's events get a uniqueness token.
func tokenRule(s *protocol.ConfiguredAirbyteStream, p *Plan, policy config.TokenPolicy) TokenRule {
	r := TokenRule{Key: s.PrimaryKey, Snapshot: s.SyncMode == protocol.SyncModeFullRefresh}
	if len(r.Key) == 0 {
		r.Key = s.Stream.SourceDefinedPrimaryKey
	}
	r.Key = slices.Clone(r.Key)
	for _, k := range r.Key {
		if len(k) == 0 {
			r.Key = nil // a key with an empty path names nothing: no key
			break
		}
	}
	if s.SyncID != nil {
		r.SyncID = strconv.FormatInt(int64(*s.SyncID), 10)
	}
	r.Generation = p.Generation
	keyNames := make([]string, len(r.Key))
	for i, k := range r.Key {
		keyNames[i] = strings.Join(k, ".")
	}
	key := "[" + strings.Join(keyNames, ", ") + "]"
	switch {
	case policy == config.TokensOff:
		r.Kind, r.Why = TokenNone, "none (uniqueness_token is off)"
		return r
	case len(r.Key) > 0:
		r.Kind = TokenKey
		switch {
		case r.Snapshot:
			r.Why = fmt.Sprintf("the sync's ID, the primary key %s and the record's content (a full-refresh snapshot)", key)
		case p.Cursor != nil:
			r.Why = fmt.Sprintf("the primary key %s, the cursor %s and the record's content (and the sync's ID for a record without a cursor value)", key, strings.Join(p.Cursor, "."))
		default:
			r.Snapshot = true // no cursor: every row could come again
			r.Why = fmt.Sprintf("the sync's ID, the primary key %s and the record's content (no cursor)", key)
		}
	case policy == config.TokensAll:
		r.Kind, r.Why = TokenRecord, "the whole record"
		if r.Snapshot {
			r.Why = "the sync's ID and the whole record (a full-refresh snapshot)"
		}
	default:
		r.Kind, r.Why = TokenNone, "none (no primary key; uniqueness_token all_streams would hash the whole record)"
		return r
	}
	if r.Snapshot && r.SyncID == "" {
		r.Kind, r.Why = TokenNone, "none (a full-refresh stream, and the catalog has no sync_id to tell one sync's rows from the next's)"
	}
	if r.Generation != "" {
		r.Why += fmt.Sprintf(", in generation %s", r.Generation)
	}
	return r
}

// checkCollisions finds streams that share a collection: a warning when all
// of them append, an error when one would truncate what another writes.
func (c *Catalog) checkCollisions() []string {
	byColl := map[string][]*Plan{}
	for _, p := range c.Plans {
		byColl[p.Collection] = append(byColl[p.Collection], p)
	}
	var problems []string
	colls := make([]string, 0, len(byColl))
	for coll := range byColl {
		colls = append(colls, coll)
	}
	sort.Strings(colls)
	for _, coll := range colls {
		ps := byColl[coll]
		if len(ps) < 2 {
			continue
		}
		names := make([]string, len(ps))
		truncates := false
		for i, p := range ps {
			names[i] = fmt.Sprintf("%q", p.Name())
			truncates = truncates || p.Truncate
		}
		if truncates {
			problems = append(problems, fmt.Sprintf("streams %s all map to collection %q and one of them truncates it, which would delete the others' events", strings.Join(names, ", "), coll))
			continue
		}
		c.Warnings = append(c.Warnings, fmt.Sprintf("streams %s all write to collection %q", strings.Join(names, ", "), coll))
	}
	return problems
}

// cursorKind reads what the stream's JSON schema says about the cursor.
func cursorKind(schema json.RawMessage, path []string) CursorKind {
	var node map[string]any
	if json.Unmarshal(schema, &node) != nil {
		return CursorUnknown
	}
	for _, name := range path {
		props, _ := node["properties"].(map[string]any)
		next, _ := props[name].(map[string]any)
		if next == nil {
			return CursorUnknown
		}
		node = next
	}
	types := map[string]bool{}
	switch t := node["type"].(type) {
	case string:
		types[t] = true
	case []any:
		for _, x := range t {
			if s, ok := x.(string); ok {
				types[s] = true
			}
		}
	}
	format, _ := node["format"].(string)
	switch {
	case types["string"] && (format == "date-time" || format == "date"):
		return CursorDate
	case types["string"]:
		return CursorString
	case types["integer"] || types["number"]:
		return CursorEpoch
	}
	return CursorUnknown
}

// joinValues lists an enum's values for a message.
func joinValues[T ~string](vs []T) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = string(v)
	}
	return strings.Join(parts, ", ")
}
