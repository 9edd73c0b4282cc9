// Package bulk is the HTTPS transport: it takes events to Keen's bulk API
// (POST /3.0/projects/P/events, package keenapi) in batches, several
// requests in flight, and reports each event's outcome from Keen's answer,
// which holds one result per event, in the order sent, per collection.
// Nothing here speaks Kafka; the pipeline sees the transport interface it
// defines, and package write hears the outcomes (package transport).
//
// A batch goes when it holds MaxBatchEvents events or the next event would
// take it past MaxBatchBytes, or when its first event has waited Linger
// (so that a slow source's records, and the last ones of a sync, are not
// held back). Up to Requests batches are in flight; Send waits while all
// are. A request keenapi gives up on (after its retries, bounded by the
// delivery timeout) fails every event of its batch.
package bulk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"destination-keen/internal/failure"
	"destination-keen/internal/keenapi"
	"destination-keen/internal/transport"
)

// Limits of Keen's bulk API. Keen does not publish them; client libraries
// send 1,000 to 5,000 events a request, and third-party sources cite
// 10,000,000 bytes per request and 900,000 bytes per event (unconfirmed):
// the event limit is taken as given, the request is kept well below.
const (
	MaxEventBytes  = 900_000
	MaxBatchEvents = 5_000
	MaxBatchBytes  = 2 << 20
	// Linger is how long a batch's first event may wait for others.
	Linger = 20 * time.Millisecond
	// Requests is how many requests may be in flight: at 100 ms of round
	// trip, 8 requests of full batches carry far more than Kafka's lanes.
	Requests = 8
)

// Transport sends events to Keen's HTTPS API. Get, Send and Close are for
// one goroutine; outcomes come from the request goroutines.
type Transport struct {
	api  *keenapi.Client
	out  transport.Outcomes
	pool sync.Pool

	// RoundTrip is one request's round trip, measured at Open.
	RoundTrip time.Duration

	mu  sync.Mutex // guards cur against the linger loop
	cur *batch

	batches   chan *batch
	workers   sync.WaitGroup
	stopLoop  chan struct{}
	loopDone  chan struct{}
	closeOnce sync.Once
}

// batch is the events of one request, by collection in the order first seen.
type batch struct {
	first  time.Time
	n      int
	bytes  int
	order  []string
	events map[string][]*transport.Envelope
}

func (b *batch) add(env *transport.Envelope) {
	if b.n == 0 {
		b.first = time.Now()
	}
	if _, ok := b.events[env.Collection]; !ok {
		b.order = append(b.order, env.Collection)
	}
	b.events[env.Collection] = append(b.events[env.Collection], env)
	b.n++
	b.bytes += len(env.Buf) + 1
}

// fits says whether env may join the batch.
func (b *batch) fits(env *transport.Envelope) bool {
	return b.n == 0 || b.n < MaxBatchEvents && b.bytes+len(env.Buf)+len(env.Collection)+8 <= MaxBatchBytes
}

// Open proves that the key may write (an empty request, retried as any
// other; a second one is timed as the round trip) and starts the request
// goroutines. api's MaxWait should be
// the delivery timeout.
func Open(ctx context.Context, api *keenapi.Client, out transport.Outcomes) (*Transport, error) {
	api.UseHTTP1(Requests)
	began := time.Now()
	if err := api.CheckWrite(ctx, true); err != nil {
		return nil, err
	}
	rtt := time.Since(began)
	// The first check may have waited out retries: a second one times the
	// round trip.
	began = time.Now()
	if api.CheckWrite(ctx, false) == nil {
		rtt = time.Since(began)
	}
	t := &Transport{api: api, out: out, RoundTrip: rtt,
		batches: make(chan *batch), stopLoop: make(chan struct{}), loopDone: make(chan struct{})}
	t.pool.New = func() any { return &transport.Envelope{} }
	t.cur = newBatch()
	for range Requests {
		t.workers.Go(t.work)
	}
	go t.linger()
	return t, nil
}

func newBatch() *batch { return &batch{events: map[string][]*transport.Envelope{}} }

// Get returns an empty envelope.
func (t *Transport) Get() *transport.Envelope { return t.pool.Get().(*transport.Envelope) }

// MaxMessageBytes is the largest event Keen's bulk API takes.
func (t *Transport) MaxMessageBytes() int { return MaxEventBytes }

// Describe says how the transport sends, for the log.
func (t *Transport) Describe() string {
	return fmt.Sprintf("batches of up to %d events or %d MiB, up to %d requests in flight", MaxBatchEvents, MaxBatchBytes>>20, Requests)
}

// InFlightBytes is the most bytes of events the transport holds awaiting
// their outcome: a full batch in every request slot, and the batch being
// filled.
func (t *Transport) InFlightBytes() int { return (Requests + 1) * MaxBatchBytes }

// Send adds env to the current batch, sending the batch first when env
// does not fit; it waits while every request slot is busy, and returns
// false, env not sent, when ctx ends first.
func (t *Transport) Send(ctx context.Context, env *transport.Envelope) bool {
	t.mu.Lock()
	if !t.cur.fits(env) {
		full := t.cur
		t.cur = newBatch()
		t.mu.Unlock()
		select {
		case t.batches <- full:
		case <-ctx.Done():
			t.mu.Lock()
			t.merge(full)
			t.mu.Unlock()
			return false
		}
		t.mu.Lock()
	}
	t.cur.add(env)
	t.mu.Unlock()
	return true
}

// merge puts back a batch that could not go (its events were sent, as far
// as the pipeline knows): Close sends it. t.mu is held.
func (t *Transport) merge(b *batch) {
	for _, c := range t.cur.order {
		for _, env := range t.cur.events[c] {
			b.add(env)
		}
	}
	t.cur = b
}

// linger sends a batch whose first event has waited Linger, when a request
// slot is free; while none is, the batch goes on filling.
func (t *Transport) linger() {
	defer close(t.loopDone)
	tick := time.NewTicker(Linger / 2)
	defer tick.Stop()
	for {
		select {
		case <-t.stopLoop:
			return
		case now := <-tick.C:
			t.mu.Lock()
			if t.cur.n > 0 && now.Sub(t.cur.first) >= Linger {
				select {
				case t.batches <- t.cur: // a request goroutine was idle
					t.cur = newBatch()
				default:
				}
			}
			t.mu.Unlock()
		}
	}
}

// Close sends what is left, waits for every answer and its outcomes, and
// ends the request goroutines. No Send may follow.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		close(t.stopLoop)
		<-t.loopDone
		if t.cur.n > 0 {
			t.batches <- t.cur
			t.cur = newBatch()
		}
		close(t.batches)
		t.workers.Wait()
	})
}

// Diagnose says whether Keen now refuses the key, the project or the
// certificate (a config_error); any other trouble is not its to report.
func (t *Transport) Diagnose(ctx context.Context) error {
	if err := t.api.CheckWrite(ctx, false); err != nil {
		if f := failure.As(err); f.Kind == failure.Config {
			return f
		}
	}
	return nil
}

// work sends batches until there are no more.
func (t *Transport) work() {
	var body bytes.Buffer
	for b := range t.batches {
		t.send(b, &body)
	}
}

// result is Keen's answer for one event.
type result struct {
	Success bool `json:"success"`
	Error   struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"error"`
}

// send makes the request of one batch and reports every event's outcome.
func (t *Transport) send(b *batch, body *bytes.Buffer) {
	body.Reset()
	body.WriteByte('{')
	for i, c := range b.order {
		if i > 0 {
			body.WriteByte(',')
		}
		name, _ := json.Marshal(c)
		body.Write(name)
		body.WriteString(":[")
		for j, env := range b.events[c] {
			if j > 0 {
				body.WriteByte(',')
			}
			body.Write(env.Buf)
		}
		body.WriteByte(']')
	}
	body.WriteByte('}')
	// Not the sync's context: a request in flight when the sync stops
	// still gets its answer, so that the states it holds can go out.
	answer, err := t.api.PostEvents(context.Background(), body.Bytes(), b.n)
	if err != nil {
		t.fail(b, err)
		return
	}
	var results map[string][]result
	if err := json.Unmarshal(answer, &results); err != nil {
		t.fail(b, failure.Systemf(err, "Keen's HTTPS API answered %d events with something other than their results", b.n))
		return
	}
	for _, c := range b.order {
		if got, sent := len(results[c]), len(b.events[c]); got != sent {
			t.fail(b, failure.Systemf(nil, "Keen's HTTPS API answered %d results for the %d events sent to collection %q; which were kept cannot be told", got, sent, c))
			return
		}
	}
	for _, c := range b.order {
		for i, env := range b.events[c] {
			if r := results[c][i]; r.Success {
				t.out.Stored(env)
			} else {
				if r.Error.Name == "" {
					r.Error.Name = "UnnamedError" // {"success":false} alone
				}
				t.out.Refused(env, transport.Refusal{Name: r.Error.Name, Description: r.Error.Description})
			}
			t.put(env)
		}
	}
}

// fail reports every event of b failed with err.
func (t *Transport) fail(b *batch, err error) {
	for _, c := range b.order {
		for _, env := range b.events[c] {
			f := failure.As(err)
			if f.Stream == "" && f.Kind != failure.Config {
				f = &failure.Error{Kind: f.Kind, Message: f.Message, Cause: f.Cause, Stream: env.Stream}
			}
			t.out.Failed(env, f)
			t.put(env)
		}
	}
}

// put recycles an envelope once its outcome is reported.
func (t *Transport) put(env *transport.Envelope) {
	if cap(env.Buf) > 1<<20 {
		return
	}
	env.Buf, env.Seq, env.Plan, env.Stream, env.Collection = env.Buf[:0], 0, 0, "", ""
	t.pool.Put(env)
}
