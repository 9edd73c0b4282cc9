package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"destination-keen/schemas"
	"destination-keen/tools/keenlocal/emulator"
)

// The end-to-end tests run this test binary as the connector (TestMain
// calls main when asked), so that every sync is a real process: flags, exit
// codes, stdout, the real sarama producer over SASL/PLAIN and TLS, trusting
// the emulator's CA through SSL_CERT_FILE as a user would.
//
// This file is their one harness (an emulator per test, the connector's
// config for it, runs, and readers of what came out); the tests live by
// concern: acceptance (Airbyte's destination suite), input, config, signals,
// faults, deletes, generations, tokens, conform, counts, options, protocol
// and readme, each in <concern>_e2e_test.go.

const runMainEnv = "DESTINATION_KEEN_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	if raceDetector {
		// The race detector shadows every heap address ever used, so the
		// test process's memory follows the heap's high-water mark: a
		// collector that runs at 40% growth rather than 100% keeps a run
		// with -race under 1 GB (the far-link tests hold ~130 MiB live).
		debug.SetGCPercent(40)
	}
	os.Exit(m.Run())
}

const secretKey = "e2e-SECRET-master-key-5c1d"

type env struct {
	t   *testing.T
	emu *emulator.Emulator
	dir string
	// transport is the config's transport: "kafka" (the default, written
	// as no member) or "https", whose config also points
	// kafka_bootstrap_servers at an address that refuses connections, so
	// that a sync that touched Kafka would fail.
	transport string
}

// transports are the transports every case of eachTransport runs over.
var transports = []string{"kafka", "https"}

// eachTransport runs f once per transport, as subtests named after them:
// the cases whose behaviour is the same over Kafka and over HTTPS.
func eachTransport(t *testing.T, f func(t *testing.T, transport string)) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) { f(t, tr) })
	}
}

// newEnvOver is newEnv for a sync over transport.
func newEnvOver(t *testing.T, transport string, opts emulator.Options) *env {
	e := newEnv(t, opts)
	e.transport = transport
	return e
}

func newEnv(t *testing.T, opts emulator.Options) *env {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = secretKey
	}
	e, err := emulator.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		if raceDetector {
			// Give the emulator's memory back before the next test grows
			// the heap (and the race detector's shadow of it) again.
			debug.FreeOSMemory()
		}
	})
	return &env{t: t, emu: e, dir: t.TempDir()}
}

// config writes a connector config pointing at the emulator.
func (e *env) config(override map[string]any) string {
	if e.transport == "https" {
		over := map[string]any{"transport": "https", "kafka_bootstrap_servers": refusedAddr(e.t)}
		maps.Copy(over, override)
		override = over
	}
	p := filepath.Join(e.dir, "config.json")
	if err := os.WriteFile(p, e.emu.Config().JSON(override), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) write(name string, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

type result struct {
	code           int
	stdout, stderr string
	lines          []map[string]any
}

// peakMemory is the peak memory the sync summary reports, in MiB, or -1.
func (r result) peakMemory() int64 {
	_, after, ok := strings.Cut(r.logs(), ", peak memory ")
	var n int64
	if _, err := fmt.Sscanf(after, "%d MiB", &n); !ok || err != nil {
		return -1
	}
	return n
}

// run runs the connector as a process and checks what every command must
// do: stdout holds only valid Airbyte messages, and the key appears nowhere.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	return e.runFrom(strings.NewReader(stdin), args...)
}

// runFrom is run with stdin read from r, for input too large to hold.
func (e *env) runFrom(stdin io.Reader, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	// atexit_sleep_ms: a race-enabled process otherwise sleeps 1 s at exit.
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "SSL_CERT_FILE="+e.emu.CAFile(), "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	if strings.Contains(r.stdout+r.stderr, secretKey) {
		e.t.Errorf("the API key appears in the connector's output")
	}
	if e.transport == "https" && len(args) > 0 && args[0] == "write" && r.code == 0 && !strings.Contains(r.stdout, "Transport https: ") {
		e.t.Errorf("a sync meant to go over HTTPS did not:\n%s", r.stdout)
	}
	// HTTPS holds more than 8 MiB in flight: the collector's target is
	// halved unless the environment chose one.
	if e.transport == "https" && len(args) > 0 && args[0] == "write" && r.code == 0 && os.Getenv("GOGC")+os.Getenv("GOMEMLIMIT") == "" &&
		!strings.Contains(r.stdout, "Garbage collector target GOGC=50 while up to ") {
		e.t.Errorf("a sync over HTTPS left the collector's target as it was:\n%s", r.stdout)
	}
	for l := range strings.Lines(r.stdout) {
		l = strings.TrimSuffix(l, "\n")
		if err := schemas.Validate(schemas.AirbyteMessage, []byte(l)); err != nil {
			e.t.Fatalf("stdout line is not a valid Airbyte message (%v): %s", err, l)
		}
		if err := validateOfficial([]byte(l)); err != nil {
			e.t.Fatalf("stdout line is not a valid Airbyte message by the official definition (%v): %s", err, l)
		}
		var m map[string]any
		d := json.NewDecoder(strings.NewReader(l))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			e.t.Fatal(err)
		}
		r.lines = append(r.lines, m)
	}
	return r
}

func (r result) ofType(typ string) []map[string]any {
	var out []map[string]any
	for _, l := range r.lines {
		if l["type"] == typ {
			out = append(out, l)
		}
	}
	return out
}

func (r result) states() []map[string]any {
	var out []map[string]any
	for _, l := range r.ofType("STATE") {
		out = append(out, l["state"].(map[string]any))
	}
	return out
}

// stateCounts is each echoed state's destinationStats as
// "recordCount/rejectedRecordCount", joined by commas ("<nil>" for a count
// left out).
func (r result) stateCounts() string {
	var got []string
	for _, s := range r.states() {
		ds, _ := s["destinationStats"].(map[string]any)
		got = append(got, fmt.Sprintf("%v/%v", ds["recordCount"], ds["rejectedRecordCount"]))
	}
	return strings.Join(got, ",")
}

func (r result) trace(t *testing.T) map[string]any {
	t.Helper()
	tr := r.ofType("TRACE")
	if len(tr) != 1 {
		t.Fatalf("want one TRACE, got %d:\n%s", len(tr), r.stdout)
	}
	return tr[0]["trace"].(map[string]any)["error"].(map[string]any)
}

// failed reports whether the run ended with one ERROR TRACE of the
// failure type whose message holds msg.
func (r result) failed(failureType, msg string) bool {
	tr := r.ofType("TRACE")
	if len(tr) != 1 {
		return false
	}
	e, ok := tr[0]["trace"].(map[string]any)["error"].(map[string]any)
	return ok && e["failure_type"] == failureType && strings.Contains(fmt.Sprint(e["message"]), msg)
}

func (r result) logs() string {
	var b strings.Builder
	for _, l := range r.ofType("LOG") {
		b.WriteString(l["log"].(map[string]any)["message"].(string))
		b.WriteByte('\n')
	}
	return b.String()
}

func (e *env) events(collection string) []map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evs, err := e.emu.Events(ctx, collection)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) noRejections() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rej, err := e.emu.Rejected(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(rej) > 0 {
		e.t.Fatalf("Keen would have dropped %d events: %+v", len(rej), rej)
	}
}

// Catalog and message builders.

type cstream struct {
	name, ns, mode string
	cursor         []string
	schema         string
	gen, minGen    int
	key            [][]string // primary_key
	syncID         int
	syncMode       string // default incremental
	// bare: the stream has only a name and a json_schema, as in Airbyte's
	// own acceptance-test catalogs (no supported_sync_modes).
	bare bool
}

func catalogDoc(streams ...cstream) map[string]any {
	var out []any
	for _, s := range streams {
		schema := json.RawMessage(`{"type":"object"}`)
		if s.schema != "" {
			schema = json.RawMessage(s.schema)
		}
		st := map[string]any{"name": s.name, "json_schema": schema}
		if !s.bare {
			st["supported_sync_modes"] = []string{"full_refresh", "incremental"}
		}
		if s.ns != "" {
			st["namespace"] = s.ns
		}
		syncMode := "incremental"
		if s.syncMode != "" {
			syncMode = s.syncMode
		}
		cs := map[string]any{"stream": st, "sync_mode": syncMode, "destination_sync_mode": s.mode}
		if s.cursor != nil {
			cs["cursor_field"] = s.cursor
		}
		if s.gen != 0 {
			cs["generation_id"], cs["minimum_generation_id"] = s.gen, s.minGen
		}
		if s.key != nil {
			cs["primary_key"] = s.key
		}
		if s.syncID != 0 {
			cs["sync_id"] = s.syncID
		}
		out = append(out, cs)
	}
	return map[string]any{"streams": out}
}

func rec(stream, data string, emittedAt int64) string {
	return fmt.Sprintf(`{"type":"RECORD","record":{"stream":%q,"data":%s,"emitted_at":%d}}`, stream, data, emittedAt)
}

func streamState(stream, cursor string) string {
	return fmt.Sprintf(`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":%q},"stream_state":{"cursor":%s}}}}`, stream, cursor)
}

// status is a STREAM_STATUS trace for a stream (of no namespace).
func status(stream, status string) string {
	return fmt.Sprintf(`{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":%q},"status":%q}}}`, stream, status)
}

// complete is what the platform sends for each stream of the catalog once
// the source succeeded: a STREAM_STATUS COMPLETE.
func complete(streams ...string) string {
	out := make([]string, len(streams))
	for i, s := range streams {
		out[i] = status(s, "COMPLETE")
	}
	return strings.Join(out, "\n")
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func byField(evs []map[string]any, field string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, ev := range evs {
		out[fmt.Sprint(ev[field])] = ev
	}
	return out
}

func keenTS(ev map[string]any) string {
	k, _ := ev["keen"].(map[string]any)
	s, _ := k["timestamp"].(string)
	return s
}

// startSync starts a write whose stdin and stdout the test drives.
func (e *env) startSync(t *testing.T, cat string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, *bytes.Buffer) {
	return e.startSyncWith(t, cat, nil)
}

func (e *env) startSyncWith(t *testing.T, cat string, config map[string]any) (*exec.Cmd, io.WriteCloser, io.ReadCloser, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "write", "--config", e.config(config), "--catalog", cat)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "SSL_CERT_FILE="+e.emu.CAFile(), "GORACE=atexit_sleep_ms=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, stdin, stdout, &stderr
}

// syncThrough runs a sync of n records (a state every 100) while fault
// acts on the emulator, and checks that every record landed exactly once
// and every state was echoed.
func syncThrough(t *testing.T, n int, fault func(*emulator.Emulator)) result {
	r, _ := syncThroughEnv(t, n, fault)
	return r
}

func syncThroughEnv(t *testing.T, n int, fault func(*emulator.Emulator)) (result, *env) {
	t.Helper()
	r, e := runThrough(t, n, fault)
	e.storedOnce(n)
	return r, e
}

// runThrough runs the sync of syncThrough and checks its exit and states,
// leaving the events to the caller.
func runThrough(t *testing.T, n int, fault func(*emulator.Emulator)) (result, *env) {
	t.Helper()
	return runThroughLink(t, link{}, n, fault)
}

// link is the way to the brokers in runThroughLink: an added round trip,
// the connector's kafka_producers and padding that makes each event pad
// bytes larger.
type link struct {
	latency   time.Duration
	producers int
	pad       int
}

func runThroughLink(t *testing.T, l link, n int, fault func(*emulator.Emulator)) (result, *env) {
	t.Helper()
	e := newEnv(t, emulator.Options{Latency: l.latency})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	pad := strings.Repeat("x", l.pad)
	var in strings.Builder
	for i := 1; i <= n; i++ {
		data := fmt.Sprintf(`{"n":%d}`, i)
		if l.pad > 0 {
			data = fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad)
		}
		in.WriteString(rec("a", data, 1) + "\n")
		if i%100 == 0 {
			in.WriteString(streamState("a", strconv.Itoa(i)) + "\n")
		}
	}
	fault(e.emu)
	var override map[string]any
	if l.producers > 0 {
		override = map[string]any{"kafka_producers": l.producers}
	}
	r := e.run(in.String(), "write", "--config", e.config(override), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	if got := len(r.states()); got != n/100 {
		t.Fatalf("%d states echoed, want %d", got, n/100)
	}
	return r, e
}

// storedOnce checks that collection "a" holds records 1..n, each once, and
// that nothing was rejected.
func (e *env) storedOnce(n int) {
	e.t.Helper()
	evs := e.events("a")
	if distinct := len(byField(evs, "n")); distinct != n || len(evs) != n {
		e.t.Fatalf("%d events, %d distinct, for %d records", len(evs), distinct, n)
	}
	e.noRejections()
}

// refusedAddr is an address that refuses connections for the rest of the
// test.
func refusedAddr(t *testing.T) string { return emulator.RefusedFor(t) }
