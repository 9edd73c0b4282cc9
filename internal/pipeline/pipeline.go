// Package pipeline is the per-record path of a sync: read, decode, shape,
// send, count. It reads the input in batches of lines, decodes them and
// shapes records into Keen events on parallel workers, and applies the
// batches in input order on one sequencer, which numbers records for the
// checkpoint tracker, counts them for states and for the summary, applies
// the oversized and nonconforming policies, and hands events to the
// transport (Kafka or HTTPS, behind the Transport interface).
//
// It owns its goroutines: Run returns once every one of them has ended. It
// does not open or close the sink, delete collections, watch the brokers or
// decide when a sync ends; package write does.
package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"destination-keen/gen/protocol"
	"destination-keen/internal/airbyte"
	"destination-keen/internal/catalog"
	"destination-keen/internal/checkpoint"
	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/jsonx"
	"destination-keen/internal/keen"
	"destination-keen/internal/message"
	"destination-keen/internal/transport"
)

// The input is read in batches of lines; workers decode and shape the
// batches in parallel; one sequencer takes them back in input order and does
// everything that depends on order. One goroutine could not keep up with
// the producer on the record path alone.
const (
	batchLines = 256
	batchBytes = 256 << 10
	// batchesInFlight bounds memory: at most this many batches are read
	// ahead of the sequencer.
	batchesInFlight = 8
)

// Transport takes events to Keen: the pipeline gets an envelope, fills it
// and sends it. Package sink's Kafka producer and package bulk's HTTPS
// requests are the two; a transport reports each event's outcome (package
// transport) to whoever opened it, not to the pipeline, which neither waits
// for acknowledgements nor knows the transport's errors.
type Transport interface {
	// Get returns an envelope to fill (Buf empty).
	Get() *transport.Envelope
	// MaxMessageBytes is the largest event the transport takes.
	MaxMessageBytes() int
	// Send hands the envelope over to be delivered to its collection;
	// false when ctx ended first (the envelope is then not delivered).
	Send(ctx context.Context, env *transport.Envelope) bool
}

// Pipeline is the record path of one sync.
type Pipeline struct {
	cat     *catalog.Catalog
	cfg     *config.Config
	out     Transport // where events go
	tracker *checkpoint.Tracker
	em      *airbyte.Emitter

	streams []Counts           // by plan index
	gens    []*keen.Generation // by plan index; nil unless the stream truncates
	conform *conformLog
	records atomic.Int64 // read
	states  atomic.Int64 // read

	// Counts since the previous state, touched by the sequencer only.
	sinceState    []int64 // per plan, for STREAM states
	rejectedSince []int64
	unknownTypes  map[string]bool // message types warned about; the sequencer's
	unknownEnds   map[string]bool // streams not in the catalog whose status was warned about
	statuses      atomic.Bool     // a COMPLETE or INCOMPLETE came, for any stream
	total         int64           // all streams, for GLOBAL and LEGACY states
	rejectedTotal int64
}

// Counts counts what happened to one stream's records, in input order: the
// sequencer counts a record when it applies it, so after a failure the
// counts stop at the record that failed.
type Counts struct {
	Records         atomic.Int64 // read and applied
	FromCursor      atomic.Int64 // keen.timestamp taken from the cursor
	Fallbacks       atomic.Int64 // cursor missing or unreadable: emitted_at
	DroppedKeenKeys atomic.Int64
	Oversized       atomic.Int64 // skipped as too large (oversized_records: skip)
	Refused         atomic.Int64 // refused by Keen (HTTPS), counted as rejected
	Nonconforming   atomic.Int64 // skipped as breaking Keen's rules (nonconforming_records: skip)
	Tokens          atomic.Int64 // events sent with a uniqueness token derived here
	SourceTokens    atomic.Int64 // events sent with the token their source set
	// completion is how the stream ended so far (a Completion), by the
	// rule of completion.go; the sequencer writes it.
	completion atomic.Int32
}

// Sent is how many of the stream's records were sent as events: those read
// less those skipped on purpose.
func (s *Counts) Sent() int64 {
	return s.Records.Load() - s.Oversized.Load() - s.Nonconforming.Load()
}

// Completion is how the stream ended, as far as the platform said; final
// once Run has returned.
func (s *Counts) Completion() Completion { return Completion(s.completion.Load()) }

// apply moves the stream's completion on by e and says whether it was
// Completed before e and is no longer.
func (s *Counts) apply(e end) (reopened bool) {
	was := s.Completion()
	now := was.next(e)
	if now != was {
		s.completion.Store(int32(now))
	}
	return was == Completed && now == Reopened
}

// New returns the pipeline of a sync.
func New(cat *catalog.Catalog, cfg *config.Config, s Transport, tr *checkpoint.Tracker, em *airbyte.Emitter) *Pipeline {
	n := len(cat.Plans)
	p := &Pipeline{cat: cat, cfg: cfg, out: s, tracker: tr, em: em,
		streams: make([]Counts, n), gens: make([]*keen.Generation, n), conform: newConformLog(n),
		sinceState: make([]int64, n), rejectedSince: make([]int64, n), unknownTypes: map[string]bool{}, unknownEnds: map[string]bool{}}
	for _, plan := range cat.Plans {
		if plan.Truncate {
			p.gens[plan.Index] = &keen.Generation{Name: catalog.GenerationProperty, Value: []byte(plan.Generation)}
		}
	}
	return p
}

// Counts returns the counts of the plan's stream.
func (p *Pipeline) Counts(plan *catalog.Plan) *Counts { return &p.streams[plan.Index] }

// Skipped returns how many records were left out on purpose, all streams.
func (p *Pipeline) Skipped() int64 {
	var n int64
	for i := range p.streams {
		n += p.streams[i].Oversized.Load() + p.streams[i].Nonconforming.Load()
	}
	return n
}

// StatusesSeen says whether the input held a COMPLETE or INCOMPLETE stream
// status at all: a platform that reports completion sends one for every
// stream when the source succeeds, and none when it fails.
func (p *Pipeline) StatusesSeen() bool { return p.statuses.Load() }

// Progress returns how many records and states were read so far.
func (p *Pipeline) Progress() (records, states int64) { return p.records.Load(), p.states.Load() }

// Run reads stdin to its end and applies it. It returns nil at the end of
// the input, or when ctx ends (the caller knows why), or the error that
// ends the sync. Before it returns, every goroutine it started has ended,
// with one exception Go imposes: when the sync stops while a read of stdin
// blocks, stdin is closed to end the read (cmd/destination-keen reads stdin
// through Go's poller for this), and a read that closing cannot end is left
// to end with the process.
func (p *Pipeline) Run(ctx context.Context, stdin io.Reader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *batch, batchesInFlight)
	ordered := make(chan *batch, batchesInFlight)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.read(ctx, stdin, work, ordered)
	}()
	for range max(runtime.GOMAXPROCS(0), 2) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.shape(work)
		}()
	}
	readDone := make(chan struct{})
	go func() { wg.Wait(); close(readDone) }()

	err := p.sequence(ctx, ordered)
	cancel()
	select {
	case <-readDone:
	default:
		// The reader may be blocked in a read of stdin, which nothing but
		// closing it ends (for a file, only when Go's poller reads it).
		if c, ok := stdin.(io.Closer); ok {
			_ = c.Close()
		}
		select {
		case <-readDone:
		case <-time.After(readCloseWait):
			// A read that closing does not end is left to end with the
			// process; the workers and the sequencer have ended, and the
			// reader hands nothing on once ctx is done.
		}
	}
	return err
}

// readCloseWait bounds the wait for a read of stdin that closing should
// have ended.
const readCloseWait = time.Second

// batchPool recycles batches once the sequencer is done with them: nothing
// keeps a reference into their buffers (events and states are copies).
var batchPool = sync.Pool{New: func() any { return &batch{buf: make([]byte, 0, batchBytes)} }}

func newBatch() *batch {
	b := batchPool.Get().(*batch)
	b.done = make(chan struct{})
	return b
}

func freeBatch(b *batch) {
	if cap(b.buf) > 4*batchBytes {
		return // one huge line: let it go
	}
	clear(b.items)
	b.buf, b.lines, b.items, b.err, b.done = b.buf[:0], b.lines[:0], b.items[:0], nil, nil
	batchPool.Put(b)
}

type batch struct {
	buf   []byte
	lines []lineRef
	items []item
	err   error // a read error after the lines, reported in order
	done  chan struct{}
}

type lineRef struct {
	start, end, no int
	long           *message.LongLine // a record over message.MaxLine, not held
}

type itemKind uint8

const (
	itemSkip     itemKind = iota // blank line, LOG, TRACE, CONTROL and the like
	itemRecord                   // env holds the event
	itemState                    // line holds the STATE message
	itemFail                     // err ends the sync here
	itemRejected                 // a record left out (nonconforming_records: skip)
	itemEnd                      // a TRACE saying how a stream ended (end), of plan (nil: not in the catalog, or none named)
	itemUnknown                  // a message type the protocol schema does not list: typeName
)

type item struct {
	kind   itemKind
	plan   *catalog.Plan
	env    *transport.Envelope // nil for a record over message.MaxLine
	size   int64               // the event's bytes, or the line's when env is nil
	line   []byte
	lineNo int
	// RECORD: what shaping found, counted by the sequencer in input order
	fromCursor bool          // keen.timestamp came from the cursor
	droppedKey int           // keys of the source's keen object dropped
	token      tokenOutcome  // what became of the record's uniqueness token
	end        end           // itemEnd
	typeName   string        // an unknown message type
	changes    []keen.Change // what conforming changed; for itemRejected, why
	// STATE, and the stream an itemEnd names
	stateKind message.StateKind
	stateAt   [2]int // where the state object is in line
	name, ns  string
	err       error
}

// read cuts the input into batches and hands each to the workers and, in
// order, to the sequencer.
func (p *Pipeline) read(ctx context.Context, stdin io.Reader, work, ordered chan<- *batch) {
	defer close(work)
	defer close(ordered)
	r := message.NewReader(stdin)
	b := newBatch()
	flush := func() bool {
		select {
		case work <- b:
		case <-ctx.Done():
			return false
		}
		select {
		case ordered <- b:
		case <-ctx.Done():
			return false
		}
		b = newBatch()
		return true
	}
	for {
		line, n, err := r.Next()
		var long *message.LongLine
		if errors.As(err, &long) {
			err = longRecord(long)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				b.err = err
				if _, ok := errors.AsType[*failure.Error](err); !ok {
					b.err = failure.Transientf(err, "Cannot read the input")
				}
			}
			if len(b.lines) > 0 || b.err != nil {
				flush()
			}
			return
		}
		start := len(b.buf)
		b.buf = append(b.buf, line...)
		b.lines = append(b.lines, lineRef{start: start, end: len(b.buf), no: n, long: long})
		// A full batch goes; so does a partial one when the input has nothing
		// more buffered, so that a slow source's records and states do not
		// wait for lines that may be long in coming.
		if len(b.lines) >= batchLines || len(b.buf) >= batchBytes || r.Buffered() == 0 {
			if !flush() {
				return
			}
		}
	}
}

// longRecord returns nil for a line over message.MaxLine that is a RECORD
// naming its stream (it then meets the oversized policy), else why the sync
// stops there.
func longRecord(l *message.LongLine) error {
	switch {
	case l.Err != nil:
		return &failure.Error{Kind: failure.System, Cause: l,
			Message: fmt.Sprintf("Input line %d (%d bytes) is not a valid Airbyte message: %v", l.Line, l.Bytes, l.Err)}
	case l.Type != string(protocol.AirbyteMessageTypeRECORD):
		return &failure.Error{Kind: failure.System, Cause: l,
			Message: fmt.Sprintf("Input line %d is a message of %d bytes of type %.40q: only a RECORD may be over %d MiB (it then meets oversized_records)", l.Line, l.Bytes, l.Type, message.MaxLine>>20)}
	case l.Stream == "":
		return &failure.Error{Kind: failure.System, Cause: l,
			Message: fmt.Sprintf("Input line %d is a RECORD of %d bytes without a stream name", l.Line, l.Bytes)}
	}
	return nil
}

// tokenOutcome is what became of a record's uniqueness token.
type tokenOutcome uint8

const (
	tokenNone   tokenOutcome = iota // none: the stream's events get none, or the record lacks what its token is derived from
	tokenOurs                       // derived here
	tokenSource                     // the source's own, kept
)

// worker is what one shaping goroutine keeps from record to record.
type worker struct {
	cache   planCache
	m       message.Message
	scratch []byte        // conformed data
	parsers []keen.Parser // per plan: each remembers its stream's time layout
	tokener keen.Tokener
	token   []byte   // the record's token
	keyVals [][]byte // the record's primary key values
}

// shape decodes each line of a batch and shapes records into envelopes.
// Nothing here depends on the order of batches.
func (p *Pipeline) shape(work <-chan *batch) {
	wk := &worker{parsers: make([]keen.Parser, len(p.cat.Plans))}
	for b := range work {
		if cap(b.items) < len(b.lines) {
			b.items = make([]item, len(b.lines))
		}
		b.items = b.items[:len(b.lines)]
		for i, l := range b.lines {
			line := b.buf[l.start:l.end]
			it := &b.items[i]
			it.lineNo, it.line = l.no, line
			if l.long != nil {
				p.shapeLong(wk, it, l.long)
				if it.kind == itemFail {
					break
				}
				continue
			}
			if len(jsonx.TrimSpace(line)) == 0 {
				continue
			}
			if err := message.Decode(line, &wk.m); err != nil {
				it.kind, it.err = itemFail, badInput(err, l.no)
				break // nothing after a bad line is used
			}
			switch wk.m.Type {
			case message.Unknown:
				it.kind, it.typeName = itemUnknown, wk.m.TypeName
			case message.Record:
				p.shapeRecord(wk, it)
			case message.Other:
				if wk.m.Trace != nil {
					p.shapeTrace(wk.m.Trace, it)
				}
			case message.State:
				m := &wk.m
				it.kind, it.stateKind, it.name, it.ns, it.stateAt = itemState, m.StateKind, m.StateStream, m.StateNamespace, m.StateAt
			}
			if it.kind == itemFail {
				break
			}
		}
		close(b.done)
	}
}

// shapeTrace reads what a TRACE says about how a stream ended: a
// STREAM_STATUS COMPLETE or INCOMPLETE, or an ERROR. Other traces are
// skipped.
func (p *Pipeline) shapeTrace(trace []byte, it *item) {
	if name, ns, complete, ok := message.StreamStatus(trace); ok {
		it.kind, it.end, it.name, it.ns, it.plan = itemEnd, endIncomplete, name, ns, p.cat.Lookup(ns, name)
		if complete {
			it.end = endComplete
		}
		return
	}
	if name, ns, ok := message.TraceError(trace); ok {
		it.kind, it.end, it.name, it.ns, it.plan = itemEnd, endError, name, ns, nil
		if name != "" {
			it.plan = p.cat.Lookup(ns, name)
		}
	}
}

// planCache finds a stream's plan, remembering the last one: records of one
// stream usually come in runs.
type planCache struct {
	plan       *catalog.Plan
	stream, ns []byte
}

func (c *planCache) lookup(cat *catalog.Catalog, ns, stream []byte) *catalog.Plan {
	if c.plan != nil && string(stream) == string(c.stream) && string(ns) == string(c.ns) {
		return c.plan
	}
	p := cat.Lookup(string(ns), string(stream))
	if p != nil {
		c.plan = p
		c.stream = append(c.stream[:0], stream...)
		c.ns = append(c.ns[:0], ns...)
	}
	return p
}

// shapeLong takes a record over message.MaxLine, which was not held: its
// event is over Keen's limit, and send applies the oversized policy.
func (p *Pipeline) shapeLong(wk *worker, it *item, l *message.LongLine) {
	plan := wk.cache.lookup(p.cat, []byte(l.Namespace), []byte(l.Stream))
	if plan == nil {
		it.kind, it.err = itemFail, &failure.Error{Kind: failure.System, Stream: l.Stream, Namespace: l.Namespace,
			Message: fmt.Sprintf("Input line %d is a record of stream %q, which is not in the configured catalog", it.lineNo, l.Stream)}
		return
	}
	it.kind, it.plan, it.env, it.size, it.changes = itemRecord, plan, nil, l.Bytes, nil
}

// shapeRecord turns a decoded record into an envelope holding its event.
func (p *Pipeline) shapeRecord(wk *worker, it *item) {
	m := &wk.m
	plan := wk.cache.lookup(p.cat, m.Namespace, m.Stream)
	if plan == nil {
		it.kind, it.err = itemFail, &failure.Error{Kind: failure.System, Stream: string(m.Stream), Namespace: string(m.Namespace),
			Message: fmt.Sprintf("Input line %d is a record of stream %q, which is not in the configured catalog", it.lineNo, m.Stream)}
		return
	}
	it.plan, it.changes = plan, nil
	if cap(wk.keyVals) < len(plan.Token.Key) {
		wk.keyVals = make([][]byte, len(plan.Token.Key))
	}
	rec := keen.Capture(m.Data, m.Members, m.Traits, plan.Cursor, plan.Token.Key, wk.keyVals[:len(plan.Token.Key)])
	token, outcome := p.token(wk, plan, &rec, m.Data)
	// A record too large for Keen however it is conformed is left as it is:
	// send applies the oversized policy, and conforming it would take memory
	// in proportion to its properties for nothing.
	if max := p.out.MaxMessageBytes(); keen.NeedsConform(rec.Traits) && (len(m.Data) <= max || keen.ConformedAtLeast(m.Data) <= max) {
		var changes []keen.Change
		if wk.scratch, changes = keen.Conform(wk.scratch[:0], m.Data); len(changes) > 0 {
			switch p.cfg.Nonconforming {
			case config.Skip:
				it.kind, it.changes = itemRejected, changes[:1]
				return
			case config.Fail:
				c := changes[0]
				it.kind, it.err = itemFail, &failure.Error{Kind: failure.System, Stream: plan.Stream, Namespace: plan.Namespace,
					Message: fmt.Sprintf("Input line %d: a record of stream %q breaks Keen's event rules: %s at %s; Keen would drop it. Set nonconforming_records to fix to send it with the property changed, or to skip to leave such records out", it.lineNo, plan.Name(), c.Rule, keen.FormatPath(c.Path))}
				return
			}
			rec = rec.WithData(wk.scratch)
			it.changes = changes
		}
	}
	ts, fromCursor := time.Time{}, false
	if plan.TimestampFromCursor && rec.Cursor != nil {
		ts, fromCursor = wk.parsers[plan.Index].Parse(rec.Cursor)
	}
	if !fromCursor {
		ts = time.UnixMilli(m.EmittedAt)
	}
	env := p.out.Get()
	gen := p.gens[plan.Index]
	if n := rec.EventLen(token, gen); cap(env.Buf) < n {
		// One allocation, of n rounded up to the allocator's size class
		// (the room is there anyway, and a slightly longer event later
		// fits): no slack of append's growth (see EventLen).
		env.Buf = slices.Grow([]byte(nil), n)
	}
	var sh keen.Shape
	env.Buf, sh = rec.AppendEvent(env.Buf[:0], ts, token, gen)
	if sh.SourceToken {
		outcome = tokenSource
	}
	env.Stream, env.Plan, env.Collection = plan.Stream, plan.Index, plan.Collection
	it.kind, it.env, it.size, it.fromCursor, it.droppedKey, it.token = itemRecord, env, int64(len(env.Buf)), fromCursor, sh.DroppedKeenKeys, outcome
}

// token derives the record's uniqueness token by the stream's rule (see
// catalog.TokenRule and keen's token derivation), from the source's bytes
// as they came (before any conforming). It returns nil for none.
func (p *Pipeline) token(wk *worker, plan *catalog.Plan, rec *keen.Record, data []byte) ([]byte, tokenOutcome) {
	r := &plan.Token
	in := keen.TokenInput{Collection: plan.Collection, Generation: r.Generation}
	switch r.Kind {
	case catalog.TokenNone:
		return nil, tokenNone
	case catalog.TokenKey:
		for _, v := range rec.Key {
			if v == nil {
				return nil, tokenNone // a key value is missing
			}
		}
		in.Key, in.Cursor, in.Content = rec.Key, rec.Cursor, data
		if r.Snapshot || rec.Cursor == nil {
			if r.SyncID == "" {
				return nil, tokenNone // no cursor value and no sync to tell versions apart
			}
			in.SyncID = r.SyncID
		}
	case catalog.TokenRecord:
		in.Record = data
		if r.Snapshot {
			in.SyncID = r.SyncID
		}
	}
	wk.token = wk.tokener.Append(wk.token[:0], &in)
	return wk.token, tokenOurs
}

func badInput(err error, line int) error {
	me, ok := errors.AsType[*message.Error](err)
	if !ok {
		return failure.Systemf(err, "Input line %d is not a valid Airbyte message", line)
	}
	me.Line = line
	return &failure.Error{Kind: failure.System, Stream: me.Stream, Namespace: me.Namespace, Cause: me,
		Message: fmt.Sprintf("Input line %d is not a valid Airbyte message: %s", line, me.Reason)}
}

// sequence takes batches in input order and applies them.
func (p *Pipeline) sequence(ctx context.Context, ordered <-chan *batch) error {
	for {
		var b *batch
		select {
		case next, ok := <-ordered:
			if !ok {
				return nil // the end of the input
			}
			b = next
		case <-ctx.Done():
			return nil
		}
		select {
		case <-b.done:
		case <-ctx.Done():
			return nil
		}
		for i := range b.items {
			it := &b.items[i]
			var err error
			switch it.kind {
			case itemRecord:
				err = p.send(ctx, it)
			case itemState:
				err = p.state(it)
			case itemRejected:
				err = p.reject(it)
			case itemEnd:
				p.ended(it)
			case itemUnknown:
				if !p.unknownTypes[it.typeName] && len(p.unknownTypes) < 100 {
					p.unknownTypes[it.typeName] = true
					p.em.Log().Warn(fmt.Sprintf("Skipping messages of type %.40q (first on input line %d): the Airbyte protocol this connector follows has no such type", it.typeName, it.lineNo))
				}
			case itemFail:
				return it.err
			}
			if err != nil {
				return err
			}
		}
		if b.err != nil {
			return b.err
		}
		freeBatch(b)
		if ctx.Err() != nil {
			return nil
		}
		if err := p.em.Err(); err != nil {
			return failure.Systemf(err, "Cannot write to stdout; the platform stopped reading")
		}
	}
}

// ended applies what a TRACE says about how streams ended (see
// completion.go).
func (p *Pipeline) ended(it *item) {
	if it.end == endError {
		// Of the stream it names, or of every stream when it names none
		// or one not in the catalog.
		targets, which := p.streams, "no stream replaces its collection's earlier events"
		if it.plan != nil {
			targets = p.streams[it.plan.Index : it.plan.Index+1]
			which = fmt.Sprintf("stream %q does not replace its collection's earlier events", it.plan.Name())
		}
		p.em.Log().Warn(fmt.Sprintf("Input line %d is an ERROR trace, a failure upstream of the connector: %s in this sync", it.lineNo, which))
		for i := range targets {
			targets[i].apply(endError)
		}
		return
	}
	p.statuses.Store(true)
	if it.plan == nil {
		name := it.name
		if it.ns != "" {
			name = it.ns + "." + it.name
		}
		if !p.unknownEnds[name] && len(p.unknownEnds) < 100 {
			p.unknownEnds[name] = true
			p.em.Log().Warn(fmt.Sprintf("Input line %d: a stream status for stream %.100q, which is not in the configured catalog; ignored", it.lineNo, name))
		}
		return
	}
	p.streams[it.plan.Index].apply(it.end)
}

// count counts a record for its stream and its next state.
func (p *Pipeline) count(plan *catalog.Plan, rejected bool, line int) {
	st := &p.streams[plan.Index]
	if st.apply(endRecord) {
		p.em.Log().Warn(fmt.Sprintf("Input line %d is a record of stream %q after the platform reported the stream COMPLETE: the stream counts as complete again only after another COMPLETE", line, plan.Name()))
	}
	st.Records.Add(1)
	p.records.Add(1)
	p.sinceState[plan.Index]++
	p.total++
	if rejected {
		p.rejectedSince[plan.Index]++
		p.rejectedTotal++
	}
}

// send numbers a record, counts it and hands it to the producer, or applies
// the oversized_records policy.
func (p *Pipeline) send(ctx context.Context, it *item) error {
	plan, env := it.plan, it.env
	st := &p.streams[plan.Index]
	switch {
	case it.fromCursor:
		st.FromCursor.Add(1)
	case plan.TimestampFromCursor:
		st.Fallbacks.Add(1)
	}
	if it.droppedKey > 0 {
		st.DroppedKeenKeys.Add(int64(it.droppedKey))
	}
	if len(it.changes) > 0 {
		p.conformed(plan, it.changes)
	}
	if max := p.out.MaxMessageBytes(); env == nil || it.size > int64(max) {
		what := fmt.Sprintf("its event of %d bytes is over Keen's limit of %d", it.size, max)
		if env == nil {
			what = fmt.Sprintf("it is a line of %d bytes, over %d MiB, so its event is over Keen's limit of %d", it.size, message.MaxLine>>20, max)
		}
		if !p.cfg.SkipOversized {
			p.count(plan, false, it.lineNo)
			return &failure.Error{Kind: failure.System, Stream: plan.Stream, Namespace: plan.Namespace,
				Message: fmt.Sprintf("Input line %d: a record of stream %q is too large: %s; set oversized_records to skip to leave such records out", it.lineNo, plan.Name(), what)}
		}
		p.count(plan, true, it.lineNo)
		st.Oversized.Add(1)
		p.em.Log().Warn(fmt.Sprintf("Skipped the record on input line %d of stream %q: %s", it.lineNo, plan.Name(), what))
		return p.tracker.Done(p.tracker.Next())
	}
	p.count(plan, false, it.lineNo)
	switch it.token { // of the events sent
	case tokenOurs:
		st.Tokens.Add(1)
	case tokenSource:
		st.SourceTokens.Add(1)
	}
	env.Seq = p.tracker.Next()
	// When ctx ends first, the sync is ending: this record is not
	// delivered, nor any state after it.
	p.out.Send(ctx, env)
	return nil
}

// noStream is the scope of a STREAM state of a stream not in the catalog.
const noStream = -2

// state counts the records tied to a state, sets its destinationStats and
// queues it behind them.
func (p *Pipeline) state(it *item) error {
	var records, rejected int64
	scope := checkpoint.AllStreams
	if it.stateKind == message.StreamState {
		scope = noStream // a stream not in the catalog has no records
		if plan := p.cat.Lookup(it.ns, it.name); plan != nil {
			scope = plan.Index
			records, rejected = p.sinceState[plan.Index], p.rejectedSince[plan.Index]
			p.sinceState[plan.Index], p.rejectedSince[plan.Index] = 0, 0
		}
	} else {
		records, rejected = p.total, p.rejectedTotal
	}
	p.total, p.rejectedTotal = 0, 0
	line, at := bytes.Clone(it.line), it.stateAt
	p.states.Add(1)
	// Keen's refusals (HTTPS) of records before the state are known only
	// when the state is released: they join its rejected records then.
	stamp := func(refused int64) []byte {
		return message.WithDestinationStats(line, at, records, rejected+refused)
	}
	if err := p.tracker.State(scope, stamp); err != nil {
		return failure.Systemf(err, "Cannot write to stdout")
	}
	return nil
}
