package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/catalog"
	"destination-keen/internal/checkpoint"
	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/keen"
	"destination-keen/internal/message"
	"destination-keen/internal/transport"
)

// fakeTransport keeps what the pipeline sends and acknowledges it at once
// to the tracker, as write's callback does for the Kafka sink, or holds
// the acknowledgements until ack is called.
type fakeTransport struct {
	max     int
	tracker *checkpoint.Tracker
	hold    bool

	mu   sync.Mutex
	sent []sentEvent
}

type sentEvent struct {
	collection string
	event      []byte
	seq        uint64
	slack      int // the event buffer's unused capacity
}

func (f *fakeTransport) Get() *transport.Envelope { return &transport.Envelope{} }
func (f *fakeTransport) MaxMessageBytes() int     { return f.max }

func (f *fakeTransport) Send(_ context.Context, env *transport.Envelope) bool {
	f.mu.Lock()
	f.sent = append(f.sent, sentEvent{env.Collection, bytes.Clone(env.Buf), env.Seq, cap(env.Buf) - len(env.Buf)})
	f.mu.Unlock()
	if !f.hold {
		if err := f.tracker.Done(env.Seq); err != nil {
			panic(err)
		}
	}
	return true
}

// ack acknowledges the i-th event sent.
func (f *fakeTransport) ack(t *testing.T, i int) {
	t.Helper()
	f.mu.Lock()
	seq := f.sent[i].seq
	f.mu.Unlock()
	if err := f.tracker.Done(seq); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeTransport) events() []sentEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentEvent(nil), f.sent...)
}

// rig is a pipeline over a fake transport, its output in out.
type rig struct {
	p   *Pipeline
	tr  *fakeTransport
	out *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// states returns the destinationStats of each STATE written so far.
func (s *syncBuffer) states(t *testing.T) []map[string]float64 {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]float64
	for l := range strings.Lines(s.b.String()) {
		var m struct {
			Type  string
			State struct {
				DestinationStats map[string]float64 `json:"destinationStats"`
			}
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if m.Type == "STATE" {
			out = append(out, m.State.DestinationStats)
		}
	}
	return out
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newRig compiles a catalog of append streams a and b, and a config with
// the given members added.
func newRig(t *testing.T, configMembers string, hold bool) *rig {
	t.Helper()
	cfg, err := config.Parse([]byte(`{"project_id":"p","api_key":"k"` + configMembers + `}`))
	if err != nil {
		t.Fatal(err)
	}
	stream := func(name string) string {
		return `{"stream":{"name":"` + name + `","json_schema":{}},"sync_mode":"full_refresh","destination_sync_mode":"append"}`
	}
	cat, err := catalog.Compile([]byte(`{"streams":[`+stream("a")+`,`+stream("b")+`]}`), catalog.OptionsOf(cfg))
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	em := airbyte.NewEmitter(out)
	tracker := checkpoint.New(em.Line)
	tr := &fakeTransport{max: 1_000_000, tracker: tracker, hold: hold}
	return &rig{p: New(cat, cfg, tr, tracker, em), tr: tr, out: out}
}

func rec(stream, data string) string {
	return fmt.Sprintf(`{"type":"RECORD","record":{"stream":%q,"data":%s,"emitted_at":1700000000000}}`, stream, data)
}

func state(stream string) string {
	return fmt.Sprintf(`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":%q},"stream_state":{}}}}`, stream)
}

const globalState = `{"type":"STATE","state":{"type":"GLOBAL","global":{"stream_states":[]}}}`

func input(lines ...string) io.Reader { return strings.NewReader(strings.Join(lines, "\n") + "\n") }

// TestStatesWaitForAcknowledgements: a state goes out only once every
// record before it is acknowledged, in input order, whatever order the
// acknowledgements come in.
func TestStatesWaitForAcknowledgements(t *testing.T) {
	r := newRig(t, "", true)
	if err := r.p.Run(context.Background(), input(rec("a", `{"n":1}`), state("a"), rec("a", `{"n":2}`), rec("b", `{"n":3}`), state("b"))); err != nil {
		t.Fatal(err)
	}
	if n := len(r.tr.events()); n != 3 {
		t.Fatalf("%d events sent, want 3", n)
	}
	if n := len(r.out.states(t)); n != 0 {
		t.Fatalf("%d states out before any acknowledgement", n)
	}
	r.tr.ack(t, 2) // the last record first: nothing may go yet
	if n := len(r.out.states(t)); n != 0 {
		t.Fatalf("%d states out with the first record unacknowledged", n)
	}
	r.tr.ack(t, 0)
	if n := len(r.out.states(t)); n != 1 {
		t.Fatalf("%d states out after the first record, want 1", n)
	}
	r.tr.ack(t, 1)
	if n := len(r.out.states(t)); n != 2 {
		t.Fatalf("%d states out after every record, want 2", n)
	}
}

// TestEventBuffersSized: an event's buffer is allocated once at its
// size (keen.EventLen) rounded to the allocator's size class (at most an
// eighth more), not grown by append, which leaves up to 60% of it unused
// in every event in flight.
func TestEventBuffersSized(t *testing.T) {
	r := newRig(t, "", false)
	var lines []string
	for _, n := range []int{0, 40, 450, 3000, 70_000} {
		lines = append(lines, rec("a", `{"s":"`+strings.Repeat("x", n)+`","t":"2024-03-01T10:15:00Z"}`))
	}
	if err := r.p.Run(context.Background(), input(lines...)); err != nil {
		t.Fatal(err)
	}
	for _, e := range r.tr.events() {
		if e.slack > len(e.event)/8+keen.MaxTimestampLen {
			t.Errorf("an event of %d bytes in a buffer of %d", len(e.event), len(e.event)+e.slack)
		}
	}
}

// TestStateCounts: a STREAM state counts its stream's records since that
// stream's previous state; a GLOBAL state counts every stream's records
// since the previous state of any kind (the protocol's "since the previous
// state message"); records left out count, and count as rejected too.
func TestStateCounts(t *testing.T) {
	r := newRig(t, `,"oversized_records":"skip"`, false)
	r.tr.max = 100
	big := `{"blob":"` + strings.Repeat("z", 200) + `"}`
	err := r.p.Run(context.Background(), input(
		rec("a", `{"n":1}`), rec("b", `{"n":2}`), rec("a", big), state("a"),
		rec("b", `{"n":3}`), state("b"),
		rec("a", `{"n":4}`), rec("b", big), globalState,
		rec("a", `{"n":5}`), rec("b", `{"n":6}`), globalState,
	))
	if err != nil {
		t.Fatal(err)
	}
	got := r.out.states(t)
	want := []map[string]float64{
		{"recordCount": 2, "rejectedRecordCount": 1}, // a: 1 and the big one
		{"recordCount": 2},                           // b: 2 and 3
		{"recordCount": 2, "rejectedRecordCount": 1}, // 4 and the big one of b
		{"recordCount": 2},                           // 5 and 6
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stats %v, want %v", got, want)
	}
	if n := len(r.tr.events()); n != 6 {
		t.Fatalf("%d events sent, want 6 (the big ones left out)", n)
	}
	if n := r.p.Skipped(); n != 2 {
		t.Fatalf("%d skipped, want 2", n)
	}
}

// TestStopPaths: what ends a sync mid-way returns its failure, and no
// state after it goes out; the records before it were sent.
func TestStopPaths(t *testing.T) {
	tests := []struct {
		name, config, bad, want string
		kind                    failure.Kind
	}{
		{"a line that is not JSON", "", `{"type":`, "Input line 3 is not a valid Airbyte message", failure.System},
		{"a stream not in the catalog", "", rec("c", `{}`), `Input line 3 is a record of stream "c", which is not in the configured catalog`, failure.System},
		{"an oversized record", "", rec("a", `{"blob":"`+strings.Repeat("z", 200)+`"}`), `Input line 3: a record of stream "a" is too large`, failure.System},
		{"a record breaking Keen's rules", `,"nonconforming_records":"fail"`, rec("a", `{"a.b":1}`), "breaks Keen's event rules", failure.System},
		{"a line over 4 MiB that is a state", "", `{"type":"STATE","state":{"data":"` + strings.Repeat("s", message.MaxLine) + `"}}`, "only a RECORD may be over 4 MiB", failure.System},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.config, false)
			r.tr.max = 100
			err := r.p.Run(context.Background(), input(rec("a", `{"n":1}`), state("a"), tt.bad, rec("a", `{"n":2}`), state("a")))
			f := failure.As(err)
			if f == nil || f.Kind != tt.kind || !strings.Contains(f.Message, tt.want) {
				t.Fatalf("got %v, want %s %q", err, tt.kind, tt.want)
			}
			if n := len(r.out.states(t)); n != 1 {
				t.Fatalf("%d states out, want only the one before the bad line", n)
			}
			if n := len(r.tr.events()); n != 1 {
				t.Fatalf("%d events sent, want 1", n)
			}
		})
	}
}

// TestLongRecordSkipped: a record over message.MaxLine is read through
// and, with oversized_records skip, left out and counted; the records
// around it go on.
func TestLongRecordSkipped(t *testing.T) {
	r := newRig(t, `,"oversized_records":"skip"`, false)
	long := rec("b", `{"blob":"`+strings.Repeat("z", message.MaxLine)+`"}`)
	if err := r.p.Run(context.Background(), input(rec("a", `{"n":1}`), long, rec("b", `{"n":2}`), state("b"))); err != nil {
		t.Fatal(err)
	}
	got := r.out.states(t)
	if len(got) != 1 || got[0]["recordCount"] != 2 || got[0]["rejectedRecordCount"] != 1 {
		t.Fatalf("stats %v", got)
	}
	if evs := r.tr.events(); len(evs) != 2 || evs[0].collection != "a" || evs[1].collection != "b" {
		t.Fatalf("events %v", evs)
	}
	if !strings.Contains(r.out.String(), "it is a line of 4194") {
		t.Fatalf("no WARN for the long record:\n%.2000s", r.out.String())
	}
}
