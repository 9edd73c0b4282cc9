package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"destination-keen/tools/keenlocal/emulator"
)

func TestProduceErrors(t *testing.T) {
	t.Run("retriable", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		e.emu.FailProduce("", 3, kerr.NotLeaderForPartition)
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
		var in []string
		for i := range 50 {
			in = append(in, rec("a", fmt.Sprintf(`{"n":%d}`, i), 1))
		}
		in = append(in, streamState("a", "50"))
		r := e.run(lines(in...), "write", "--config", e.config(nil), "--catalog", cat)
		if r.code != 0 || len(r.states()) != 1 {
			t.Fatalf("exit %d: %s", r.code, r.stdout)
		}
		if n := len(byField(e.events("a"), "n")); n != 50 {
			t.Fatalf("%d distinct events, want 50", n)
		}
		if n := len(e.events("a")); n != 50 {
			t.Fatalf("%d events: retries duplicated records", n)
		}
	})
	t.Run("fatal", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		e.emu.FailProduce("denied", -1, kerr.TopicAuthorizationFailed)
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}, cstream{name: "denied", mode: "append"}))
		in := lines(rec("a", `{"n":1}`, 1), streamState("a", "1"), rec("denied", `{"n":1}`, 1), streamState("denied", "1"), rec("a", `{"n":2}`, 1), streamState("a", "2"))
		r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
		tr := r.trace(t)
		if r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), `collection "denied"`) {
			t.Fatalf("exit %d trace %v", r.code, tr)
		}
		states := r.states()
		if len(states) != 1 || !strings.Contains(fmt.Sprint(states[0]), "cursor:1") || !strings.Contains(fmt.Sprint(states[0]), "name:a") {
			t.Fatalf("want only a's first state, got %v", states)
		}
	})
}

// outage runs a sync through a broker outage of the given length; during,
// when not nil, runs while the brokers are down.
func outage(t *testing.T, down time.Duration, config map[string]any, during func(*env)) (string, *env, int) {
	e := newEnv(t, emulator.Options{DataDir: t.TempDir()})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, stderr := e.startSyncWith(t, cat, config)
	var out bytes.Buffer
	lineCh := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lineCh <- sc.Text()
		}
		close(lineCh)
	}()
	waitState := func(n int) {
		t.Helper()
		deadline := time.After(3 * time.Minute)
		for {
			select {
			case l, ok := <-lineCh:
				if !ok {
					t.Fatalf("the connector ended early:\n%s\n%s", out.String(), stderr)
				}
				out.WriteString(l + "\n")
				if strings.Contains(l, fmt.Sprintf(`"cursor":%d}`, n)) {
					return
				}
			case <-deadline:
				t.Fatalf("no state %d:\n%s", n, out.String())
			}
		}
	}
	feed := func(from, to int) {
		var b strings.Builder
		for n := from; n <= to; n++ {
			b.WriteString(rec("a", fmt.Sprintf(`{"n":%d}`, n), 1) + "\n")
		}
		b.WriteString(streamState("a", strconv.Itoa(to)) + "\n")
		if _, err := io.WriteString(stdin, b.String()); err != nil {
			t.Fatal(err)
		}
	}
	feed(1, 1000)
	waitState(1000)
	e.emu.StopKafka()
	feed(1001, 2000)
	if during != nil {
		during(e)
	}
	time.Sleep(down)
	if err := e.emu.StartKafka(); err != nil {
		t.Fatal(err)
	}
	feed(2001, 3000)
	stdin.Close()
	for l := range lineCh {
		out.WriteString(l + "\n")
	}
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if strings.Contains(out.String()+stderr.String(), secretKey) {
		t.Error("the API key appears in the connector's output")
	}
	return out.String(), e, code
}

// TestBrokerOutage: every broker refuses connections for 60 seconds in the
// middle of a sync; the sync waits, says so, and completes with every record
// delivered once and every state echoed.
func TestBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a broker outage of a minute")
	}
	t.Parallel() // a minute of waiting: let the other slow tests wait alongside
	out, e, code := outage(t, 60*time.Second, nil, nil)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	evs := e.events("a")
	if got := len(byField(evs, "n")); got != 3000 {
		t.Fatalf("%d distinct records landed, want 3000", got)
	}
	if len(evs) != 3000 {
		t.Errorf("%d events for 3000 records: the outage duplicated some", len(evs))
	}
	for _, s := range []string{`"cursor":1000}`, `"cursor":2000}`, `"cursor":3000}`, "Nothing acknowledged by Keen's Kafka brokers for", "records in flight; waiting, up to 5m0s", "Acknowledgements from Keen's Kafka brokers resumed, after 1m"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

// TestBrokerOutagePastTheBound: brokers that stay down fail the sync with a
// transient_error once delivery_timeout_seconds have passed; the states of
// what landed before are echoed, nothing after.
func TestBrokerOutagePastTheBound(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSyncWith(t, cat, map[string]any{"delivery_timeout_seconds": 6})
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	sc := bufio.NewScanner(stdout)
	var out strings.Builder
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), `"type":"STATE"`) {
			break
		}
	}
	e.emu.StopKafka()
	began := time.Now()
	fmt.Fprint(stdin, lines(rec("a", `{"n":2}`, 1), streamState("a", "2")))
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v:\n%s", err, out.String())
	}
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("took %v with a 6 s delivery timeout", d)
	}
	o := out.String()
	if !strings.Contains(o, `"failure_type":"transient_error"`) || !strings.Contains(o, "(delivery_timeout_seconds); 1 record was not delivered") {
		t.Fatalf("output:\n%s", o)
	}
	if strings.Contains(o, `"cursor":2}`) {
		t.Fatal("the state after the undelivered record was echoed")
	}
}

// TestCertificateChangedMidSync: the brokers come back with a certificate
// the system does not trust; a config_error, not a wait.
func TestCertificateChangedMidSync(t *testing.T) {
	out, _, code := outage(t, time.Second, nil, func(e *env) {
		if err := e.emu.ReplaceBrokerCertificate(); err != nil {
			t.Fatal(err)
		}
	})
	if code != 1 || !strings.Contains(out, `"failure_type":"config_error"`) || !strings.Contains(out, "TLS certificate of Keen's Kafka brokers is not trusted") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, `"cursor":2000}`) {
		t.Fatal("a state after undelivered records was echoed")
	}
}

// TestKeyRevokedMidSync: the brokers come back refusing the key (it was
// rotated); that is not an outage, and the sync fails with a config_error
// within seconds instead of waiting out the delivery timeout.
func TestKeyRevokedMidSync(t *testing.T) {
	began := time.Now()
	out, _, code := outage(t, time.Second, nil, func(e *env) { e.emu.SetAPIKey("rotated-key") })
	if code != 1 || !strings.Contains(out, `"failure_type":"config_error"`) || !strings.Contains(out, "rejected the Project ID and API key") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, `"cursor":2000}`) {
		t.Fatal("a state after undelivered records was echoed")
	}
	if d := time.Since(began); d > 60*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestRetriableBrokerErrors(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*emulator.Emulator)
	}{
		{"NOT_LEADER_FOR_PARTITION", func(e *emulator.Emulator) { e.FailProduce("", 5, kerr.NotLeaderForPartition) }},
		{"NOT_ENOUGH_REPLICAS", func(e *emulator.Emulator) { e.FailProduce("", 5, kerr.NotEnoughReplicas) }},
		// The brokers store the batch, then answer with an error: only
		// idempotence keeps the retry from writing it twice.
		{"REQUEST_TIMED_OUT after the write", func(e *emulator.Emulator) { e.FailProduce("", 5, kerr.RequestTimedOut) }},
		{"NOT_ENOUGH_REPLICAS_AFTER_APPEND", func(e *emulator.Emulator) { e.FailProduce("", 5, kerr.NotEnoughReplicasAfterAppend) }},
		{"dropped connections", func(e *emulator.Emulator) { e.DropProduceConnections(3) }},
		{"slow answers", func(e *emulator.Emulator) { e.DelayProduce(500*time.Millisecond, 5) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { syncThrough(t, 3000, tt.fault) })
	}
	// Over a link with a round trip of 30 ms, four producers share the
	// load (events of 6 KB spill past each one's 4 MiB), each with its own
	// producer id and sequence numbers: a retry stays deduplicated by the
	// brokers whichever producer it belongs to.
	far := link{latency: 30 * time.Millisecond, producers: 4, pad: 6000}
	for _, tt := range tests {
		t.Run(tt.name+" over a far link", func(t *testing.T) {
			t.Parallel()
			_, e := runThroughLink(t, far, 3000, tt.fault)
			e.storedOnce(3000)
			ids, err := e.emu.Producers(context.Background(), "a")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("events per producer id: %v", ids)
			if len(ids) < 2 || ids[-1] > 0 {
				t.Fatalf("events per producer id %v: want several idempotent producers", ids)
			}
		})
	}
}

// TestLeadersMoving: the partitions a produce request wrote to get a new
// leader right after the request is answered, for the first 20 requests, so
// the producer meets NOT_LEADER_FOR_PARTITION and stale metadata while it
// sends. Every record is stored once, and the moves really happened while
// records were still being produced.
func TestLeadersMoving(t *testing.T) {
	const n = 20000
	var moves *emulator.LeaderMoves
	_, e := runThrough(t, n, func(e *emulator.Emulator) { moves = e.MoveLeaders(20) })
	moved, after := moves.Wait() // read back only once the leaders have stopped moving
	if moved == 0 || after == 0 {
		t.Fatalf("%d leaders moved, %d produce requests after the first move: the leaders did not move during produce traffic", moved, after)
	}
	t.Logf("%d partition leaders moved; %d produce requests after the first move", moved, after)
	e.storedOnce(n)
}

// TestAnswerSlowerThanTheClientTimeout: the brokers take longer to answer a
// produce request than the client waits (30 s); the client gives up on the
// connection and retries, the brokers store the first attempt anyway, and
// idempotence keeps the retry from writing the records twice.
func TestAnswerSlowerThanTheClientTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: half a minute of waiting for the slow answer")
	}
	t.Parallel() // half a minute of waiting
	var over <-chan struct{}
	_, e := syncThroughEnv(t, 500, func(e *emulator.Emulator) { over = e.DelayProduce(32*time.Second, 1) })
	// The slow request is stored once its delay is over: count again then.
	select {
	case <-over:
	case <-time.After(time.Minute):
		t.Fatal("the slow request never ended its delay")
	}
	if evs := e.events("a"); len(evs) != 500 {
		t.Fatalf("%d events for 500 records once the slow request was stored", len(evs))
	}
}

func TestIdempotenceRefused(t *testing.T) {
	r := syncThrough(t, 500, func(e *emulator.Emulator) { e.RefuseIdempotence() })
	if !strings.Contains(r.logs(), "refused the idempotent producer") || !strings.Contains(r.logs(), "Producing without idempotence") {
		t.Fatalf("the fallback must be logged as a WARN:\n%s", r.logs())
	}
}

func TestFatalBrokerErrors(t *testing.T) {
	tests := []struct {
		name string
		err  *kerr.Error
		kind string
		msg  string
	}{
		{"INVALID_TOPIC_EXCEPTION", kerr.InvalidTopicException, "config_error", `refused collection "b" (stream "b")`},
		{"POLICY_VIOLATION", kerr.PolicyViolation, "system_error", `refused records for collection "b"`},
		{"MESSAGE_TOO_LARGE", kerr.MessageTooLarge, "system_error", `refused a record of stream "b" as too large`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			e.emu.FailProduce("b", -1, tt.err)
			cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}, cstream{name: "b", mode: "append"}))
			in := lines(rec("a", `{"n":1}`, 1), streamState("a", "1"), rec("b", `{"n":1}`, 1), streamState("b", "1"), rec("a", `{"n":2}`, 1), streamState("a", "2"))
			r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
			tr := r.trace(t)
			if r.code != 1 || tr["failure_type"] != tt.kind || !strings.Contains(tr["message"].(string), tt.msg) {
				t.Fatalf("exit %d trace %v", r.code, tr)
			}
			states := r.states()
			if len(states) != 1 || !strings.Contains(fmt.Sprint(states[0]), "name:a") {
				t.Fatalf("want exactly a's first state, got %v", states)
			}
		})
	}
}

func TestBrokerTooLargeWithSkip(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.emu.FailProduce("b", 1, kerr.MessageTooLarge)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}, cstream{name: "b", mode: "append"}))
	in := lines(rec("a", `{"n":1}`, 1), streamState("a", "1"), rec("b", `{"n":1}`, 1), streamState("b", "1"))
	r := e.run(in, "write", "--config", e.config(map[string]any{"oversized_records": "skip"}), "--catalog", cat)
	if r.code != 0 || len(r.states()) != 2 {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	if !strings.Contains(r.logs(), `refused a record of stream "b" as too large`) || !strings.Contains(r.logs(), "1 oversized records skipped") {
		t.Fatalf("logs:\n%s", r.logs())
	}
	if n := len(e.events("b")); n != 0 {
		t.Fatalf("%d events in b", n)
	}
}
