package bulk

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/keenapi"
	"destination-keen/internal/transport"
	"destination-keen/tools/keenlocal/emulator"
)

const key = "bulk-SECRET-key-31f"

// outcomes records every outcome by sequence number.
type outcomes struct {
	mu      sync.Mutex
	stored  map[uint64]int
	refused map[uint64]transport.Refusal
	failed  map[uint64]error
	done    chan uint64
}

func newOutcomes() *outcomes {
	return &outcomes{stored: map[uint64]int{}, refused: map[uint64]transport.Refusal{}, failed: map[uint64]error{}, done: make(chan uint64, 100000)}
}

func (o *outcomes) callbacks() transport.Outcomes {
	return transport.Outcomes{
		Stored: func(env *transport.Envelope) { o.mu.Lock(); o.stored[env.Seq]++; o.mu.Unlock(); o.done <- env.Seq },
		Refused: func(env *transport.Envelope, r transport.Refusal) {
			o.mu.Lock()
			o.refused[env.Seq] = r
			o.mu.Unlock()
			o.done <- env.Seq
		},
		Failed: func(env *transport.Envelope, err error) {
			o.mu.Lock()
			o.failed[env.Seq] = err
			o.mu.Unlock()
			o.done <- env.Seq
		},
	}
}

func start(t *testing.T, opts emulator.Options) *emulator.Emulator {
	t.Helper()
	opts.APIKey = key
	e, err := emulator.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func client(e *emulator.Emulator) *keenapi.Client {
	api := keenapi.New(&config.Config{ProjectID: e.ProjectID(), APIKey: key, APIURL: e.APIURL()})
	api.SetRootCAs(e.TrustPool())
	api.Backoff, api.MaxWait = 10*time.Millisecond, 20*time.Second
	return api
}

func open(t *testing.T, api *keenapi.Client) (*Transport, *outcomes) {
	t.Helper()
	o := newOutcomes()
	tr, err := Open(context.Background(), api, o.callbacks())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr, o
}

func send(t *testing.T, tr *Transport, seq uint64, collection, event string) {
	t.Helper()
	env := tr.Get()
	env.Seq, env.Collection, env.Stream = seq, collection, collection
	env.Buf = append(env.Buf, event...)
	if !tr.Send(context.Background(), env) {
		t.Fatal("Send gave up without a cancelled context")
	}
}

func events(t *testing.T, e *emulator.Emulator, collection string) []emulator.Event {
	t.Helper()
	evs, err := e.Events(context.Background(), collection)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestOutcomesFollowKeensAnswer: each event's outcome is Keen's answer for
// that event, matched by position within its collection, across
// collections sent in one request.
func TestOutcomesFollowKeensAnswer(t *testing.T) {
	e := start(t, emulator.Options{})
	tr, o := open(t, client(e))
	send(t, tr, 1, "a", `{"n":1}`)
	send(t, tr, 2, "b", `{"n":2}`)
	send(t, tr, 3, "a", `{"n":3}`)
	send(t, tr, 4, "b", `{"n":4}`)
	send(t, tr, 5, "a", `{"$n":5}`) // Keen refuses a name starting with $
	tr.Close()
	if len(o.stored) != 4 || o.stored[5] != 0 || len(o.failed) != 0 {
		t.Fatalf("stored %v, failed %v", o.stored, o.failed)
	}
	if r, ok := o.refused[5]; !ok || len(o.refused) != 1 || r.Name != "InvalidPropertyNameError" || !strings.Contains(r.Description, "starts with '$'") {
		t.Fatalf("refused %v", o.refused)
	}
	if len(events(t, e, "a")) != 2 || len(events(t, e, "b")) != 2 {
		t.Fatal("events lost or added")
	}
	if n := e.BulkRequests(); n != 3 { // two checks, then one batch
		t.Fatalf("%d requests, want 3", n)
	}
}

// TestBatches: a batch holds at most MaxBatchEvents events and
// MaxBatchBytes bytes; every event is stored once.
func TestBatches(t *testing.T) {
	e := start(t, emulator.Options{})
	tr, o := open(t, client(e))
	const n = 2*MaxBatchEvents + 10
	for i := 1; i <= n; i++ {
		send(t, tr, uint64(i), "many", fmt.Sprintf(`{"n":%d}`, i))
	}
	tr.Close()
	if len(o.stored) != n || len(o.failed)+len(o.refused) != 0 {
		t.Fatalf("%d stored, %d failed, %d refused", len(o.stored), len(o.failed), len(o.refused))
	}
	if got := len(events(t, e, "many")); got != n {
		t.Fatalf("%d events, want %d", got, n)
	}
	if r := e.BulkRequests(); r < 2+3 { // two checks, then 3 batches at least
		t.Fatalf("%d requests: batches past %d events", r, MaxBatchEvents)
	}

	before := e.BulkRequests()
	tr, o = open(t, client(e))
	pad := strings.Repeat("x", 600_000)
	for i := 1; i <= 4; i++ { // 2.4 MB: two batches at least
		send(t, tr, uint64(i), "big", fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad))
	}
	tr.Close()
	if len(o.stored) != 4 || len(events(t, e, "big")) != 4 {
		t.Fatalf("%d stored", len(o.stored))
	}
	if r := e.BulkRequests() - before; r < 2+2 {
		t.Fatalf("%d requests: a batch past %d bytes", r, MaxBatchBytes)
	}
}

// TestLinger: an event is sent within Linger of its arrival, without a
// full batch or Close.
func TestLinger(t *testing.T) {
	e := start(t, emulator.Options{})
	tr, o := open(t, client(e))
	send(t, tr, 1, "slow", `{"n":1}`)
	select {
	case seq := <-o.done:
		if seq != 1 || o.stored[1] != 1 {
			t.Fatalf("outcome of %d: %v", seq, o.stored)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lone event was not sent")
	}
}

// TestRetries: 429 with Retry-After, 5xx and a connection dropped after
// Keen stored the events are retried; with uniqueness tokens the dropped
// request's events are stored once.
func TestRetries(t *testing.T) {
	e := start(t, emulator.Options{})
	tr, o := open(t, client(e))
	e.FailEvents(1, http.StatusTooManyRequests, "1")
	e.FailEvents(1, http.StatusServiceUnavailable, "")
	e.FailEvents(1, http.StatusRequestTimeout, "")
	e.DropEventsConnections(1)
	began := time.Now()
	send(t, tr, 1, "retried", `{"n":1,"keen":{"uniqueness_token":"t1"}}`)
	send(t, tr, 2, "retried", `{"n":2,"keen":{"uniqueness_token":"t2"}}`)
	tr.Close()
	if o.stored[1] != 1 || o.stored[2] != 1 || len(o.failed) != 0 {
		t.Fatalf("stored %v, failed %v", o.stored, o.failed)
	}
	if time.Since(began) < time.Second {
		t.Fatal("Retry-After: 1 was not honoured")
	}
	if got := len(events(t, e, "retried")); got != 2 {
		t.Fatalf("%d events stored, want 2", got)
	}
	if d, _ := e.Duplicates(context.Background()); d["retried"] != 2 {
		t.Fatalf("duplicates %v: the dropped request's events should have come again", d)
	}
}

// TestFailures: a wrong key fails Open with a config_error; a key revoked
// while syncing fails each event of the batch with one; errors that last
// past the bound fail them with a transient_error.
func TestFailures(t *testing.T) {
	e := start(t, emulator.Options{})
	bad := keenapi.New(&config.Config{ProjectID: e.ProjectID(), APIKey: "wrong", APIURL: e.APIURL()})
	bad.SetRootCAs(e.TrustPool())
	if _, err := Open(context.Background(), bad, newOutcomes().callbacks()); failure.As(err).Kind != failure.Config {
		t.Fatalf("a wrong key: %v", err)
	}

	api := client(e)
	tr, o := open(t, api)
	e.SetAPIKey("rotated")
	send(t, tr, 1, "c", `{"n":1}`)
	send(t, tr, 2, "c", `{"n":2}`)
	tr.Close()
	for seq := uint64(1); seq <= 2; seq++ {
		if f := failure.As(o.failed[seq]); f == nil || f.Kind != failure.Config || !strings.Contains(f.Message, "rejected the API key") {
			t.Fatalf("record %d: %v", seq, o.failed[seq])
		}
	}
	e.SetAPIKey(key)

	api.MaxWait = 50 * time.Millisecond
	tr, o = open(t, api)
	e.FailEvents(100, http.StatusInternalServerError, "")
	send(t, tr, 1, "c", `{"n":1}`)
	tr.Close()
	if f := failure.As(o.failed[1]); f == nil || f.Kind != failure.Transient || f.Stream != "c" {
		t.Fatalf("lasting 500s: %v", o.failed[1])
	}
	if strings.Contains(fmt.Sprint(o.failed), key) {
		t.Fatal("the key appears in an error")
	}
}

// TestAnswersThatDoNotMatch: an answer with fewer or more results than
// events sent, or none for a collection, fails the batch: no event is
// taken as kept on a guess.
func TestAnswersThatDoNotMatch(t *testing.T) {
	for _, answer := range []string{`{"a":[{"success":true}]}`, `{"a":[{"success":true},{"success":"yes"}]}`, `{"a":[{"success":true},{"success":true},{"success":true}]}`, `{"b":[{"success":true},{"success":true}]}`, `[]`} {
		t.Run(answer, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.ContentLength <= 2 { // CheckWrite's {}
					fmt.Fprint(w, `{}`)
					return
				}
				fmt.Fprint(w, answer)
			}))
			defer srv.Close()
			api := keenapi.New(&config.Config{ProjectID: "p", APIKey: key, APIURL: srv.URL + "/3.0"})
			pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
			api.SetRootCAs(pool)
			tr, o := open(t, api)
			send(t, tr, 1, "a", `{"n":1}`)
			send(t, tr, 2, "a", `{"n":2}`)
			tr.Close()
			if len(o.stored) != 0 || len(o.failed) != 2 || failure.As(o.failed[1]).Kind != failure.System {
				t.Fatalf("stored %v, failed %v", o.stored, o.failed)
			}
		})
	}
}

// TestSendWaitsForASlot: with every request slot busy, Send waits, and
// gives up when its context ends; what it had taken is still sent at Close.
func TestSendWaitsForASlot(t *testing.T) {
	e := start(t, emulator.Options{})
	tr, o := open(t, client(e))
	release := e.HoldEvents(Requests)
	defer release()
	// Every request held: Send takes events until the slots are full and
	// one more batch has filled (a batch may go early, by Linger, while a
	// slot is free), and then gives up when its context ends.
	seq, most := uint64(0), uint64((Requests+1)*MaxBatchEvents)
	for ; seq < most+1; seq++ {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		env := tr.Get()
		env.Seq, env.Collection, env.Buf = seq+1, "busy", append(env.Buf, `{"n":1}`...)
		took := tr.Send(ctx, env)
		cancel()
		if !took {
			break
		}
	}
	if seq > most || seq <= MaxBatchEvents {
		t.Fatalf("Send took %d events with every request held, want more than %d and at most %d", seq, MaxBatchEvents, most)
	}
	release()
	tr.Close()
	if len(o.stored) != int(seq) || len(o.failed) != 0 {
		t.Fatalf("%d stored of %d taken, %d failed", len(o.stored), seq, len(o.failed))
	}
}

// TestUnnamedRefusal: a refusal without an error object is still a
// refusal, named as such, never a stored event.
func TestUnnamedRefusal(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength <= 2 {
			fmt.Fprint(w, `{}`)
			return
		}
		fmt.Fprint(w, `{"a":[{"success":true},{"success":false}]}`)
	}))
	defer srv.Close()
	api := keenapi.New(&config.Config{ProjectID: "p", APIKey: key, APIURL: srv.URL + "/3.0"})
	api.SetRootCAs(srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs)
	tr, o := open(t, api)
	send(t, tr, 1, "a", `{"n":1}`)
	send(t, tr, 2, "a", `{"n":2}`)
	tr.Close()
	if o.stored[1] != 1 || o.stored[2] != 0 || o.refused[2].Name != "UnnamedError" {
		t.Fatalf("stored %v, refused %v", o.stored, o.refused)
	}
}
