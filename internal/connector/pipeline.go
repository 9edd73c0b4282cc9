package connector

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/catalog"
	"destination-keen/internal/checkpoint"
	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/jsonx"
	"destination-keen/internal/keen"
	"destination-keen/internal/message"
	"destination-keen/internal/sink"
)

// The input is read in batches of lines; workers decode and shape the
// batches in parallel; one sequencer takes them back in input order and does
// everything that depends on order: numbering records, counting them for
// states, releasing states, sending. One goroutine could not keep up with
// the producer on the record path alone.

const (
	batchLines = 256
	batchBytes = 256 << 10
	// batchesInFlight bounds memory: at most this many batches are read
	// ahead of the sequencer.
	batchesInFlight = 8
)

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
}

type itemKind uint8

const (
	itemSkip     itemKind = iota // blank line, LOG, TRACE, CONTROL and the like
	itemRecord                   // env holds the event
	itemState                    // line holds the STATE message
	itemFail                     // err ends the sync here
	itemRejected                 // a record left out (nonconforming_records: skip)
)

type item struct {
	kind itemKind
	plan *catalog.Plan
	env  *sink.Envelope
	line []byte
	no   int
	// RECORD: what shaping found, counted by the sequencer in input order
	fromCursor bool          // keen.timestamp came from the cursor
	droppedKey int           // keys of the source's keen object dropped
	changes    []keen.Change // what conforming changed; for itemRejected, why
	// STATE
	stateKind checkpoint.Kind
	name, ns  string
	err       error
}

// pipeline runs the reader, the workers and the sequencer; it returns nil at
// the end of the input or the error that ends the sync.
func (w *writer) pipeline(stdin io.Reader) error {
	work := make(chan *batch, batchesInFlight)
	ordered := make(chan *batch, batchesInFlight)
	go w.readBatches(stdin, work, ordered)
	for range max(runtime.GOMAXPROCS(0), 2) {
		go w.shapeBatches(work)
	}
	return w.sequence(ordered)
}

func (w *writer) readBatches(stdin io.Reader, work, ordered chan<- *batch) {
	defer close(work)
	defer close(ordered)
	r := message.NewReader(stdin)
	b := newBatch()
	flush := func() bool {
		select {
		case work <- b:
		case <-w.stop:
			return false
		}
		select {
		case ordered <- b:
		case <-w.stop:
			return false
		}
		b = newBatch()
		return true
	}
	for {
		line, n, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				if errors.Is(err, message.ErrLineTooLong) {
					b.err = failure.Systemf(err, "Input line %d is too long", n)
				} else {
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
		b.lines = append(b.lines, lineRef{start: start, end: len(b.buf), no: n})
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

// shapeBatches is a worker: it decodes each line of a batch and shapes
// records into envelopes. Nothing here depends on the order of batches.
func (w *writer) shapeBatches(work <-chan *batch) {
	var cache planCache
	var scratch []byte // conformed data, reused
	dec := message.Decoder{Capture: func(ns, stream []byte) string {
		if p := cache.lookup(w.cat, ns, stream); p != nil && p.Cursor != nil {
			return p.Cursor[0]
		}
		return ""
	}}
	var m message.Message
	for b := range work {
		if cap(b.items) < len(b.lines) {
			b.items = make([]item, len(b.lines))
		}
		b.items = b.items[:len(b.lines)]
		for i, l := range b.lines {
			line := b.buf[l.start:l.end]
			it := &b.items[i]
			it.no, it.line = l.no, line
			if len(jsonx.TrimSpace(line)) == 0 {
				continue
			}
			if err := dec.Decode(line, &m); err != nil {
				it.kind, it.err = itemFail, badInput(err, l.no)
				break // nothing after a bad line is used
			}
			switch m.Type {
			case message.Record:
				scratch = w.shape(&m, &cache, it, scratch)
			case message.State:
				kind, name, ns, err := checkpoint.Describe(m.State)
				if err != nil {
					it.kind, it.err = itemFail, &failure.Error{Kind: failure.System, Cause: err,
						Message: fmt.Sprintf("Input line %d is a STATE the connector cannot read: %v", l.no, err)}
				} else {
					it.kind, it.stateKind, it.name, it.ns = itemState, kind, name, ns
				}
			}
			if it.kind == itemFail {
				break
			}
		}
		close(b.done)
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

// shape turns a decoded record into an envelope holding its event. scratch
// holds conformed data; shape returns it for reuse.
func (w *writer) shape(m *message.Message, cache *planCache, it *item, scratch []byte) []byte {
	p := cache.lookup(w.cat, m.Namespace, m.Stream)
	if p == nil {
		it.kind, it.err = itemFail, &failure.Error{Kind: failure.System, Stream: string(m.Stream),
			Message: fmt.Sprintf("Input line %d is a record of stream %q, which is not in the configured catalog", it.no, m.Stream)}
		return scratch
	}
	it.plan, it.changes = p, nil
	var rec keen.Record
	if m.CaptureDone {
		var cursor []byte
		if m.Captured != nil {
			cursor = keen.Lookup(m.Captured, p.Cursor[1:])
		}
		rec = keen.RecordOf(m.Data, m.Keen, m.DataEmpty, cursor)
	} else {
		// The stream came after the data: look the cursor up again.
		var err error
		if rec, err = keen.Inspect(m.Data, p.Cursor); err != nil {
			it.kind, it.err = itemFail, &failure.Error{Kind: failure.System, Stream: p.Stream, Cause: err,
				Message: fmt.Sprintf("Input line %d: the data of a record of stream %q is not a JSON object", it.no, p.Name())}
			return scratch
		}
	}
	if keen.NeedsConform(m.Traits) {
		var changes []keen.Change
		if scratch, changes = keen.Conform(scratch[:0], m.Data); len(changes) > 0 {
			switch w.cfg.Nonconforming {
			case config.Skip:
				it.kind, it.changes = itemRejected, changes[:1]
				return scratch
			case config.Fail:
				c := changes[0]
				it.kind, it.err = itemFail, &failure.Error{Kind: failure.System, Stream: p.Stream,
					Message: fmt.Sprintf("Input line %d: a record of stream %q breaks Keen's event rules: %s at %s; Keen would drop it. Set nonconforming_records to fix to send it with the property changed, or to skip to leave such records out", it.no, p.Name(), c.Rule, keen.FormatPath(c.Path))}
				return scratch
			}
			rec = rec.WithData(scratch)
			it.changes = changes
		}
	}
	ts, fromCursor := time.Time{}, false
	if rec.Cursor != nil {
		ts, fromCursor = p.Parser.Parse(rec.Cursor)
	}
	if !fromCursor {
		ts = time.UnixMilli(m.EmittedAt)
	}
	env := w.sink.Get()
	var sh keen.Shape
	env.Buf, sh = rec.AppendEvent(env.Buf[:0], ts)
	env.Stream, env.Tag = p.Stream, p.Index
	it.kind, it.env, it.fromCursor, it.droppedKey = itemRecord, env, fromCursor, sh.DroppedKeenKeys
	return scratch
}

// sequence takes batches in input order and applies them.
func (w *writer) sequence(ordered <-chan *batch) error {
	for b := range ordered {
		select {
		case <-b.done:
		case <-w.stop:
			return nil
		}
		for i := range b.items {
			it := &b.items[i]
			var err error
			switch it.kind {
			case itemRecord:
				err = w.send(it)
			case itemState:
				err = w.state(it)
			case itemRejected:
				err = w.reject(it)
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
		if err := w.em.Err(); err != nil {
			return failure.Systemf(err, "Cannot write to stdout; the platform stopped reading")
		}
		select {
		case <-w.stop:
			return nil
		default:
		}
	}
	return nil
}

// send numbers a record, counts it for the next state and hands it to the
// producer, or applies the oversized_records policy.
func (w *writer) send(it *item) error {
	p, env := it.plan, it.env
	p.Records.Add(1)
	w.records.Add(1)
	w.sinceState[p.Index]++
	w.total++
	switch {
	case it.fromCursor:
		p.FromCursor.Add(1)
	case p.Cursor != nil:
		p.Fallbacks.Add(1)
	}
	if it.droppedKey > 0 {
		p.DroppedKeenKey.Add(int64(it.droppedKey))
	}
	if len(it.changes) > 0 {
		w.conformed(p, it.changes)
	}
	if size := len(env.Buf); size > w.sink.MaxMessageBytes() {
		if !w.cfg.SkipOversized {
			return &failure.Error{Kind: failure.System, Stream: p.Stream,
				Message: fmt.Sprintf("Input line %d: a record of stream %q makes an event of %d bytes, over Keen's limit of %d; set oversized_records to skip to leave such records out", it.no, p.Name(), size, w.sink.MaxMessageBytes())}
		}
		p.Rejected.Add(1)
		w.rejectedSince[p.Index]++
		w.rejectedTotal++
		_ = w.em.Logf(airbyte.Warn, "Skipped the record on input line %d of stream %q: its event of %d bytes is over Keen's limit of %d", it.no, p.Name(), size, w.sink.MaxMessageBytes())
		return w.tr.Done(w.tr.Next())
	}
	env.Seq = w.tr.Next()
	msg := w.sink.Prepare(env, p.Collection)
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	if w.closed {
		return nil
	}
	select { // the common case, without a two-way select
	case w.sink.Input() <- msg:
		return nil
	default:
	}
	select {
	case w.sink.Input() <- msg:
	case <-w.stop:
	}
	return nil
}

// state counts the records tied to a state, sets its destinationStats and
// queues it behind them.
func (w *writer) state(it *item) error {
	var records, rejected int64
	if it.stateKind == checkpoint.Stream {
		if p := w.cat.Lookup(it.ns, it.name); p != nil {
			records, rejected = w.sinceState[p.Index], w.rejectedSince[p.Index]
			w.sinceState[p.Index], w.rejectedSince[p.Index] = 0, 0
		}
	} else {
		records, rejected = w.total, w.rejectedTotal
	}
	w.total, w.rejectedTotal = 0, 0
	out, err := checkpoint.WithDestinationStats(it.line, records, rejected)
	if err != nil {
		return &failure.Error{Kind: failure.System, Cause: err, Message: fmt.Sprintf("Input line %d is a STATE the connector cannot read", it.no)}
	}
	w.states.Add(1)
	if err := w.tr.State(out); err != nil {
		return failure.Systemf(err, "Cannot write to stdout")
	}
	return nil
}
