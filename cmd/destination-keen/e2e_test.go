package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"destination-keen/schemas"
	"destination-keen/tools/keenlocal/emulator"
)

// The end-to-end tests run this test binary as the connector (TestMain
// calls main when asked), so that every sync is a real process: flags, exit
// codes, stdout, the real sarama producer over SASL/PLAIN and TLS, trusting
// the emulator's CA through SSL_CERT_FILE as a user would.

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
	c := e.emu.Config()
	doc := map[string]any{"project_id": c.ProjectID, "api_key": c.APIKey, "kafka_bootstrap_servers": c.KafkaBootstrapServers, "api_url": c.APIURL}
	for k, v := range override {
		doc[k] = v
	}
	return e.write("config.json", doc)
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

func TestSyncTimestampsAndEvents(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(
		cstream{name: "visits", mode: "append", cursor: []string{"ts"}},
		cstream{name: "Ünïcödé Stream!", mode: "append", cursor: []string{"meta", "updated"},
			schema: `{"properties":{"meta":{"properties":{"updated":{"type":["null","string"],"format":"date-time"}}}}}`},
	))
	in := lines(
		rec("visits", `{"id":"java-utc","ts":"1999/12/15 14:44 utc"}`, 1602637789200),
		rec("visits", `{"id":"seconds","ts":1628080068}`, 1602637789200),
		rec("visits", `{"id":"millis","ts":1628081113151}`, 1602637789200),
		rec("visits", `{"id":"an-id","ts":250000}`, 1602637789200),
		rec("visits", `{"id":"text","ts":"some_text"}`, 1602637789200),
		rec("visits", `{"id":"missing"}`, 1602637789200),
		rec("visits", `{"id":"big","ts":1628080068,"n":18446744073709551615,"s":"a\nb\r\u2028 \"q\" 日本","keen":{"uniqueness_token":"u1","id":"x","location":{"coordinates":[1,2]}}}`, 1602637789200),
		"",
		rec("Ünïcödé Stream!", `{"id":"nested","meta":{"updated":"2021-08-04T14:27:48+02:00"}}`, 1602637789200),
		rec("Ünïcödé Stream!", `{"id":"nested-null","meta":{"updated":null}}`, 1602637789200),
		`{"type":"LOG","log":{"level":"INFO","message":"from the source"}}`,
		`{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"visits"},"status":"COMPLETE"}}}`,
		`{"type":"CONTROL","control":{"type":"CONNECTOR_CONFIG","emitted_at":1,"connectorConfig":{"config":{}}}}`,
		streamState("visits", "1"),
	)
	r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	visits := byField(e.events("visits"), "id")
	want := map[string]string{
		"java-utc": "1999-12-15T14:44:00Z",
		"seconds":  "2021-08-04T12:27:48Z",
		"millis":   "2021-08-04T12:45:13.151Z",
		"an-id":    "2020-10-14T01:09:49.200Z",
		"text":     "2020-10-14T01:09:49.200Z",
		"missing":  "2020-10-14T01:09:49.200Z",
		"big":      "2021-08-04T12:27:48Z",
	}
	if len(visits) != len(want) {
		t.Fatalf("%d visits landed, want %d", len(visits), len(want))
	}
	for id, ts := range want {
		if got := keenTS(visits[id]); got != ts {
			t.Errorf("%s: keen.timestamp %s, want %s", id, got, ts)
		}
	}
	big := visits["big"]
	if fmt.Sprint(big["n"]) != "18446744073709551615" || big["s"] != "a\nb\r\u2028 \"q\" 日本" {
		t.Errorf("data changed: n=%v s=%q", big["n"], big["s"])
	}
	k := big["keen"].(map[string]any)
	if k["uniqueness_token"] != "u1" || k["location"] == nil {
		t.Errorf("writable keen keys lost: %v", k)
	}
	uni := byField(e.events("Unicode_Stream"), "id")
	if keenTS(uni["nested"]) != "2021-08-04T12:27:48Z" || keenTS(uni["nested-null"]) != "2020-10-14T01:09:49.200Z" {
		t.Errorf("nested cursor: %v", uni)
	}
	logs := r.logs()
	for _, s := range []string{
		`Stream "visits" -> "visits": 7 records; keen.timestamp from the cursor for 4, from emitted_at for 3`,
		`Stream "Ünïcödé Stream!" -> collection "Unicode_Stream"`,
		`1 key of the source's keen objects dropped`,
	} {
		if !strings.Contains(logs, s) {
			t.Errorf("logs lack %q:\n%s", s, logs)
		}
	}
	e.noRejections()
}

func TestInferenceOff(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "visits", mode: "append", cursor: []string{"ts"}}))
	r := e.run(lines(rec("visits", `{"ts":1628080068}`, 1602637789200)), "write", "--config", e.config(map[string]any{"infer_timestamp": false}), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	evs := e.events("visits")
	if len(evs) != 1 || keenTS(evs[0]) != "2020-10-14T01:09:49.200Z" {
		t.Fatalf("inference off must use emitted_at: %v", evs)
	}
}

func TestStateCounting(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}, cstream{name: "b", mode: "append"}))
	blob := `{"cursor":18446744073709551615,"nested":{"k":[1,2]}}`
	in := lines(
		streamState("a", `"start"`), // before any record: 0.0
		rec("a", `{"n":1}`, 1), rec("b", `{"n":1}`, 1), rec("a", `{"n":2}`, 1),
		streamState("a", `"a2"`), // a: 2
		rec("b", `{"n":2}`, 1),
		streamState("b", `"b2"`), // b: 2 (one before a's state, one after)
		rec("a", `{"n":3}`, 1), rec("b", `{"n":3}`, 1),
		`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":`+blob+`,"stream_states":[]},"sourceStats":{"recordCount":2.0}}}`, // all: 2
		rec("a", `{"n":4}`, 1),
		`{"type":"STATE","state":{"data":`+blob+`}}`, // LEGACY: 1
		`{"type":"STATE","state":{"type":"LEGACY","data":{},"destinationStats":{"recordCount":99}}}`, // 0, replaced
	)
	r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	var counts []string
	for _, s := range r.states() {
		counts = append(counts, fmt.Sprint(s["destinationStats"].(map[string]any)["recordCount"]))
	}
	if got := strings.Join(counts, ","); got != "0.0,2.0,2.0,2.0,1.0,0.0" {
		t.Fatalf("recordCounts %s, want 0.0,2.0,2.0,2.0,1.0,0.0", got)
	}
	// Blobs pass through byte for byte, sourceStats too.
	if !strings.Contains(r.stdout, `"shared_state":`+blob) || !strings.Contains(r.stdout, `"data":`+blob) || !strings.Contains(r.stdout, `"sourceStats":{"recordCount":2.0}`) {
		t.Fatalf("state blobs changed:\n%s", r.stdout)
	}
	e.noRejections()
}

// TestRejectedCounts: records left out on purpose (nonconforming_records:
// skip) count in the rejectedRecordCount of the state they belong to, for
// every kind of state: per stream for a STREAM state, all streams since the
// previous state for GLOBAL and LEGACY; written only when not zero.
func TestRejectedCounts(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}, cstream{name: "b", mode: "append"}))
	in := lines(
		rec("a", `{"ok":1}`, 1), rec("a", `{"$bad":1}`, 1),
		streamState("a", "1"), // a: 2 records, 1 rejected
		rec("b", `{"$bad":2}`, 1), rec("a", `{"$bad":3}`, 1), rec("b", `{"ok":2}`, 1),
		`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"c":2},"stream_states":[]}}}`, // all: 3, 2 rejected
		rec("a", `{"$bad":4}`, 1),
		`{"type":"STATE","state":{"data":{"c":3}}}`, // LEGACY: 1, 1 rejected
		rec("b", `{"ok":3}`, 1),
		`{"type":"STATE","state":{"type":"LEGACY","data":{"c":4}}}`, // LEGACY: 1, none rejected
	)
	r := e.run(in, "write", "--config", e.config(map[string]any{"nonconforming_records": "skip"}), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	var got []string
	for _, s := range r.states() {
		ds := s["destinationStats"].(map[string]any)
		got = append(got, fmt.Sprintf("%v/%v", ds["recordCount"], ds["rejectedRecordCount"]))
	}
	if want := "2.0/1.0,3.0/2.0,1.0/1.0,1.0/<nil>"; strings.Join(got, ",") != want {
		t.Fatalf("recordCount/rejectedRecordCount %s, want %s", strings.Join(got, ","), want)
	}
	if n := len(e.events("a")) + len(e.events("b")); n != 3 {
		t.Fatalf("%d events, want the 3 that follow Keen's rules", n)
	}
}

// seed produces events into collections as an earlier sync would have.
func (e *env) seed(collection string, n int) {
	e.t.Helper()
	cat := e.write("seed.json", catalogDoc(cstream{name: collection, mode: "append"}))
	var in []string
	for i := range n {
		in = append(in, rec(collection, fmt.Sprintf(`{"old":%d}`, i), 1))
	}
	if r := e.run(lines(in...), "write", "--config", e.config(nil), "--catalog", cat); r.code != 0 {
		e.t.Fatalf("seed: %s", r.stdout)
	}
}

func TestOverwriteDeletesOnlyItsOwnCollection(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.seed("users", 3)
	e.seed("orders", 2)
	e.seed("refreshed", 4)
	cat := e.write("catalog.json", catalogDoc(
		cstream{name: "users", mode: "overwrite", syncID: 4},
		cstream{name: "orders", mode: "append"},
		cstream{name: "refreshed", mode: "append", gen: 5, minGen: 5},
	))
	r := e.run(lines(rec("users", `{"new":1}`, 1), rec("orders", `{"new":1}`, 1), rec("refreshed", `{"new":1}`, 1), complete("users", "orders", "refreshed")),
		"write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	if n := len(e.events("users")); n != 1 {
		t.Errorf("users: %d events, want only the new one", n)
	}
	if n := len(e.events("orders")); n != 3 {
		t.Errorf("orders (append): %d events, want 2 old + 1 new", n)
	}
	if n := len(e.events("refreshed")); n != 1 {
		t.Errorf("refreshed (generation 5 = minimum): %d events, want only the new one", n)
	}
	var deleted []string
	for _, req := range e.emu.Requests() {
		if req.Method == http.MethodDelete {
			deleted = append(deleted, req.Path)
		}
	}
	sort.Strings(deleted)
	// Two filtered deletes per truncating collection: other generations,
	// and events without one.
	if got := strings.Join(deleted, ","); got != "/3.0/projects/keenlocal/events/refreshed,/3.0/projects/keenlocal/events/refreshed,/3.0/projects/keenlocal/events/users,/3.0/projects/keenlocal/events/users" {
		t.Errorf("deleted %s", got)
	}
	if !strings.Contains(r.logs(), `refresh (generation 5)`) {
		t.Errorf("the plan log must say why a stream truncates:\n%s", r.logs())
	}
}

func TestDeleteRetriedAfter429(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.emu.FailDeletes(1, http.StatusTooManyRequests, "1")
	e.emu.FailDeletes(1, http.StatusServiceUnavailable, "")
	cat := e.write("catalog.json", catalogDoc(cstream{name: "users", mode: "overwrite", syncID: 4}))
	r := e.run(lines(rec("users", `{"a":1}`, 1), complete("users")), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	if !strings.Contains(r.logs(), "HTTP 429") || !strings.Contains(r.logs(), "HTTP 503") {
		t.Errorf("the retries must be logged:\n%s", r.logs())
	}
	if n := len(e.events("users")); n != 1 {
		t.Fatalf("%d events", n)
	}
}

func TestWrongKey(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cfg := e.config(map[string]any{"api_key": "wrong-" + secretKey})
	r := e.run("", "check", "--config", cfg)
	cs := r.ofType("CONNECTION_STATUS")
	if r.code != 0 || len(cs) != 1 || !strings.Contains(fmt.Sprint(cs[0]), "FAILED") || !strings.Contains(fmt.Sprint(cs[0]), "rejected the Project ID and API key") {
		t.Fatalf("check: exit %d %s", r.code, r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	r = e.run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "config_error" {
		t.Fatalf("write: exit %d %v", r.code, tr)
	}
}

func TestCheck(t *testing.T) {
	e := newEnv(t, emulator.Options{WriteKey: "write-only-key"})
	r := e.run("", "check", "--config", e.config(nil))
	if cs := r.ofType("CONNECTION_STATUS"); len(cs) != 1 || !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) {
		t.Fatalf("check: %s", r.stdout)
	}
	r = e.run("", "check", "--config", e.config(map[string]any{"api_key": "write-only-key"}))
	if !strings.Contains(r.stdout, "not the project's master key") {
		t.Fatalf("a write key must fail check as not a master key: %s", r.stdout)
	}
}

// TestConfigTypos: a field that is not an option is named in a WARN with
// the option it was probably meant to be, by check (which still succeeds)
// and by write.
func TestConfigTypos(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cfg := e.config(map[string]any{"compresion": "zstd"})
	want := `\"compresion\" is not an option of this connector; did you mean \"compression\"?` // as JSON writes it
	r := e.run("", "check", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) {
		t.Fatalf("check: exit %d\n%s", r.code, r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	r = e.run(lines(rec("a", `{"n":1}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("write: exit %d\n%s", r.code, r.stdout)
	}
}

// refusedAddr returns an address that refuses connections for the rest of
// the test: a port bound and never listened on. A port listened on and
// closed could be taken meanwhile by another test process's emulator (go
// test runs packages side by side), whose brokers would then answer.
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

func TestUnreachableBrokers(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	closed := refusedAddr(t)
	cfg := e.config(map[string]any{"kafka_bootstrap_servers": closed})
	began := time.Now()
	r := e.run("", "check", "--config", cfg)
	if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, "Cannot reach Keen's Kafka brokers") {
		t.Fatalf("check: %s", r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	r = e.run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "transient_error" || !strings.Contains(tr["message"].(string), closed) {
		t.Fatalf("write: exit %d %v", r.code, tr)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestAPIURLWithoutVersion: an api_url without /3.0 answers 404 for every
// path: check blames api_url, not the (correct) Project ID.
func TestAPIURLWithoutVersion(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	r := e.run("", "check", "--config", e.config(map[string]any{"api_url": strings.TrimSuffix(e.emu.APIURL(), "/3.0")}))
	if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, "api_url: the address answers 404 for Keen's API paths: it should end in /3.0") || strings.Contains(r.stdout, "check the Project ID") {
		t.Fatalf("check: %s", r.stdout)
	}
}

// TestConfigMistakes: an address or URL that cannot be right, or a key no
// HTTP header can carry, is a config_error naming the field, from check and
// from write alike, before anything reaches the network; a scheme in
// capitals is no mistake.
func TestConfigMistakes(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	for _, tt := range []struct {
		name string
		over map[string]any
		want string
	}{
		{"broker port out of range", map[string]any{"kafka_bootstrap_servers": "127.0.0.1:99999"}, "kafka_bootstrap_servers: address 1 of 1 has a port out of range"},
		{"IPv6 without brackets", map[string]any{"kafka_bootstrap_servers": "::1:9092"}, "kafka_bootstrap_servers: address 1 of 1 is not host:port"},
		{"a scheme", map[string]any{"kafka_bootstrap_servers": "https://127.0.0.1:9092"}, "kafka_bootstrap_servers: address 1 of 1 has a scheme"},
		{"semicolons", map[string]any{"kafka_bootstrap_servers": "a:9092;b:9093"}, "addresses are separated by commas"},
		{"API port out of range", map[string]any{"api_url": "https://127.0.0.1:99999/3.0"}, "api_url: has a port out of range"},
		{"a key with a line break", map[string]any{"api_key": secretKey + "\n"}, "api_key: holds a line break"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(tt.over)
			r := e.run("", "check", "--config", cfg)
			if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, tt.want) {
				t.Fatalf("check: %s", r.stdout)
			}
			r = e.run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
			if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), tt.want) {
				t.Fatalf("write: exit %d %v", r.code, tr)
			}
		})
	}
	t.Run("HTTPS in capitals", func(t *testing.T) {
		cfg := e.config(map[string]any{"api_url": strings.Replace(e.emu.APIURL(), "https://", "HTTPS://", 1)})
		if r := e.run("", "check", "--config", cfg); !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) {
			t.Fatalf("check: %s", r.stdout)
		}
	})
}

// TestBrokersThatAreNotKafka: kafka_bootstrap_servers pointed at a TLS
// port that does not speak Kafka (here, the API's HTTPS port): check and
// write say so as a config_error naming the setting, within seconds.
func TestBrokersThatAreNotKafka(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	u, err := url.Parse(e.emu.APIURL())
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(map[string]any{"kafka_bootstrap_servers": u.Host})
	began := time.Now()
	r := e.run("", "check", "--config", cfg)
	if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, "kafka_bootstrap_servers") || !strings.Contains(r.stdout, "not as a Kafka broker") {
		t.Fatalf("check: %s", r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	r = e.run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), "kafka_bootstrap_servers") {
		t.Fatalf("write: exit %d %v", r.code, tr)
	}
	if d := time.Since(began); d > 15*time.Second { // 3 s each, the wait for a first answer
		t.Errorf("took %v to find out", d)
	}
}

// TestDeadSeed: one bootstrap address that refuses connections, in any
// position of the list, next to the three live brokers: check succeeds and
// every write syncs, each with a WARN naming the dead address; Keen's
// inbound cluster has three brokers, and one down for maintenance must not
// stop a sync that the others can serve.
func TestDeadSeed(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	dead := refusedAddr(t)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	live := e.emu.BrokerAddrs()
	synced := 0
	for pos := 0; pos <= len(live); pos++ {
		seeds := slices.Insert(slices.Clone(live), pos, dead)
		cfg := e.config(map[string]any{"kafka_bootstrap_servers": strings.Join(seeds, ",")})
		t.Run(fmt.Sprintf("dead seed at %d", pos), func(t *testing.T) {
			r := e.run("", "check", "--config", cfg)
			if !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) || !strings.Contains(r.logs(), dead) {
				t.Fatalf("check must succeed and name the dead seed in a WARN:\n%s", r.stdout)
			}
			for range 3 { // sarama picks its first seed at random: try several
				r := e.run(lines(rec("a", fmt.Sprintf(`{"n":%d}`, synced), 1), streamState("a", "1")), "write", "--config", cfg, "--catalog", cat)
				if r.code != 0 {
					t.Fatalf("write: exit %d\n%s", r.code, r.stdout)
				}
				if !strings.Contains(r.logs(), "Kafka bootstrap server "+dead+" cannot be reached") {
					t.Fatalf("no WARN names the dead seed:\n%s", r.logs())
				}
				synced++
			}
		})
	}
	if n := len(e.events("a")); n != synced {
		t.Fatalf("%d events, want %d", n, synced)
	}
}

func TestBadInputStopsTheSync(t *testing.T) {
	deeper := strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001)
	tests := []struct {
		name, bad, want string
	}{
		{"malformed line", `{"type":"RECORD","record":{`, "Input line 3 is not a valid Airbyte message: the line is not valid JSON"},
		{"not json at all", `hello`, "Input line 3 is not a valid Airbyte message: the line is not JSON"},
		{"json not an object", `["RECORD"]`, "Input line 3 is not a valid Airbyte message: the message is a JSON array, not an object"},
		{"no type", `{"record":{"stream":"a","data":{},"emitted_at":1}}`, "Input line 3 is not a valid Airbyte message: the message has no type"},
		{"a known type in lower case", `{"type":"record","record":{"stream":"a","data":{},"emitted_at":1}}`, `Input line 3 is not a valid Airbyte message: the message type "record" is not one of the protocol's`},
		{"record without stream", `{"type":"RECORD","record":{"data":{},"emitted_at":1}}`, "the record has no stream"},
		{"record without data", `{"type":"RECORD","record":{"stream":"a","emitted_at":1}}`, "the record has no data"},
		{"record without emitted_at", `{"type":"RECORD","record":{"stream":"a","data":{}}}`, "the record has no emitted_at"},
		{"emitted_at not an integer", `{"type":"RECORD","record":{"stream":"a","data":{},"emitted_at":"yesterday"}}`, "the record's emitted_at is not an integer"},
		{"data not an object", rec("a", `[1,2]`, 1), "Input line 3 is not a valid Airbyte message: the record's data is a JSON array"},
		{"invalid UTF-8", rec("a", "{\"s\":\"\xff\xfe\"}", 1), "invalid UTF-8 in string"},
		{"NUL byte in a string", rec("a", "{\"s\":\"a\x00b\"}", 1), "control character in string"},
		{"NUL byte outside strings", "\x00" + rec("a", `{}`, 1), "the line is not JSON"},
		{"data nested 10,001 levels", rec("a", deeper, 1), "JSON nested too deeply"},
		{"unknown stream", rec("nope", `{}`, 1), `Input line 3 is a record of stream "nope", which is not in the configured catalog`},
		{"state not an object", `{"type":"STATE","state":"cursor=5"}`, "the state is a JSON string, not an object"},
		{"stream state without descriptor", `{"type":"STATE","state":{"type":"STREAM","stream":{}}}`, "Input line 3 is not a valid Airbyte message: a STREAM state needs stream.stream_descriptor"},
		{"state type not a string", `{"type":"STATE","state":{"type":1,"data":{}}}`, "Input line 3 is not a valid Airbyte message: the state's type is a JSON number"},
		{"global state without a global object", `{"type":"STATE","state":{"type":"GLOBAL","global":"x"}}`, "Input line 3 is not a valid Airbyte message: a GLOBAL state needs a global object"},
		{"a namespace the catalog does not have", `{"type":"RECORD","record":{"stream":"a","namespace":"other","data":{},"emitted_at":1}}`, `Input line 3 is a record of stream "a", which is not in the configured catalog`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
			in := lines(rec("a", `{"n":1}`, 1), streamState("a", "1"), tt.bad, rec("a", `{"n":2}`, 1), streamState("a", "2"))
			r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
			tr := r.trace(t)
			if r.code != 1 || tr["failure_type"] != "system_error" || !strings.Contains(tr["message"].(string), tt.want) {
				t.Fatalf("exit %d trace %v", r.code, tr)
			}
			if !strings.Contains(tr["message"].(string), "line 3") {
				t.Fatalf("the message must name the line: %v", tr["message"])
			}
			states := r.states()
			if len(states) != 1 || !strings.Contains(fmt.Sprint(states[0]), "cursor:1") {
				t.Fatalf("want exactly the state before the bad line, got %v", states)
			}
			if last := r.lines[len(r.lines)-1]; last["type"] != "TRACE" {
				t.Fatalf("the TRACE must come last: %v", last)
			}
			if n := len(e.events("a")); n != 1 {
				t.Fatalf("%d events landed, want the 1 before the bad line", n)
			}
		})
	}
}

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

func TestSpecAndVersionAsAProcess(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	r := e.run("", "spec")
	if r.code != 0 || len(r.ofType("SPEC")) != 1 || len(r.lines) != 1 {
		t.Fatalf("spec: %d %s", r.code, r.stdout)
	}
}

func TestOversizedRecords(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("x", 1_000_100) + `"}`
	in := lines(rec("a", `{"n":1}`, 1), rec("a", big, 1), rec("a", `{"n":2}`, 1), streamState("a", "1"))
	t.Run("fail", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
		r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
		tr := r.trace(t)
		if r.code != 1 || tr["failure_type"] != "system_error" || !strings.Contains(tr["message"].(string), "Input line 2: a record of stream \"a\" is too large: its event of 10001") ||
			!strings.Contains(tr["message"].(string), "over Keen's limit of 1000000") {
			t.Fatalf("exit %d trace %v", r.code, tr)
		}
		if len(r.states()) != 0 {
			t.Fatal("no state may pass a record that did not land")
		}
	})
	t.Run("skip", func(t *testing.T) {
		e := newEnv(t, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
		r := e.run(in, "write", "--config", e.config(map[string]any{"oversized_records": "skip"}), "--catalog", cat)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stdout)
		}
		states := r.states()
		if len(states) != 1 {
			t.Fatalf("states %v", states)
		}
		ds := states[0]["destinationStats"].(map[string]any)
		if fmt.Sprint(ds["recordCount"]) != "3.0" || fmt.Sprint(ds["rejectedRecordCount"]) != "1.0" {
			t.Fatalf("destinationStats %v, want 3 records with 1 rejected", ds)
		}
		if !strings.Contains(r.logs(), "Skipped the record on input line 2") {
			t.Fatalf("the skip must be logged:\n%s", r.logs())
		}
		if n := len(e.events("a")); n != 2 {
			t.Fatalf("%d events", n)
		}
	})
}

// TestSIGTERM: the platform cancels a sync with SIGTERM while the source is
// still sending. The connector stops reading, echoes the states whose
// records landed, and exits non-zero, promptly.
func TestSIGTERM(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	// Wait for the first state: its record has landed.
	var out bytes.Buffer
	buf := make([]byte, 4096)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), `"type":"STATE"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no state within 20s: %s", out.String())
		}
		n, err := stdout.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A connector that does not stop is killed, and fails the test below.
	defer time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() }).Stop()
	rest, _ := io.ReadAll(stdout)
	out.Write(rest)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1 after SIGTERM, got %v", err)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Fatalf("took %v to stop", d)
	}
	if !strings.Contains(out.String(), `"failure_type":"transient_error"`) || !strings.Contains(out.String(), "stopped by a signal") {
		t.Fatalf("want a transient_error TRACE:\n%s", out.String())
	}
	stdin.Close()
}

// TestSIGTERMFlushes: a signal that comes while records are in flight
// stops the input but not their delivery: the flush waits for their
// acknowledgements and echoes the state they complete before the TRACE.
func TestSIGTERMFlushes(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	arrived, release := e.emu.HoldProduce()
	t.Cleanup(release)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	defer stdin.Close()
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	select {
	case <-arrived: // record 1 is at the brokers, unanswered: its state cannot be out
	case <-time.After(20 * time.Second):
		t.Fatal("no produce request within 20s")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Release the brokers' answer only once the connector says it stopped
	// reading and is flushing.
	r := bufio.NewReader(stdout)
	var out strings.Builder
	for !strings.Contains(out.String(), "Stopping on a signal") {
		l, err := r.ReadString('\n')
		out.WriteString(l)
		if err != nil {
			t.Fatalf("%v before the connector said it was stopping:\n%s", err, out.String())
		}
	}
	if strings.Contains(out.String(), `"type":"STATE"`) {
		t.Fatalf("a state went out before its record was acknowledged:\n%s", out.String())
	}
	release()
	defer time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() }).Stop()
	rest, _ := io.ReadAll(r)
	out.Write(rest)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1 after SIGTERM, got %v", err)
	}
	s := out.String()
	state, trace := strings.Index(s, `"type":"STATE"`), strings.Index(s, `"failure_type":"transient_error"`)
	if state < 0 || trace < 0 || state > trace {
		t.Fatalf("want the state acknowledged during the flush, then the TRACE:\n%s", s)
	}
	if n := len(e.events("a")); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	// The counts say what was applied: the one record read.
	if !strings.Contains(s, `Stream \"a\" -> \"a\": 1 record;`) || !strings.Contains(s, "Sync summary: 1 record read, 1 acknowledged") {
		t.Fatalf("the counts after a signal:\n%s", s)
	}
}

// TestUntrustedCertificate: the brokers' and the API's certificate signed by
// a CA the system does not trust is a config_error, for check and write.
func TestUntrustedCertificate(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	other, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cfg := e.config(nil)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	run := func(stdin string, args ...string) result {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1", "SSL_CERT_FILE="+other.CAFile(), "GORACE=atexit_sleep_ms=0")
		cmd.Stdin = strings.NewReader(stdin)
		out, _ := cmd.Output()
		code := cmd.ProcessState.ExitCode()
		return result{code: code, stdout: string(out)}
	}
	r := run("", "check", "--config", cfg)
	if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, "TLS certificate") {
		t.Fatalf("check: %s", r.stdout)
	}
	r = run(lines(rec("a", `{}`, 1)), "write", "--config", cfg, "--catalog", cat)
	if r.code != 1 || !strings.Contains(r.stdout, `"failure_type":"config_error"`) || !strings.Contains(r.stdout, "not trusted") {
		t.Fatalf("write: %d %s", r.code, r.stdout)
	}
	if strings.Contains(r.stdout, secretKey) {
		t.Fatal("key printed")
	}
}

func TestTruncatedLastLine(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	in := lines(rec("a", `{"n":1}`, 1), streamState("a", "1")) + `{"type":"RECORD","record":{"stream":"a","da`
	r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
	tr := r.trace(t)
	if r.code != 1 || tr["failure_type"] != "system_error" || !strings.Contains(tr["message"].(string), "Input line 3 is not a valid Airbyte message") {
		t.Fatalf("exit %d trace %v", r.code, tr)
	}
	if len(r.states()) != 1 {
		t.Fatalf("the state before the cut line must be echoed: %v", r.states())
	}
	// A complete last line without a newline is a line like any other.
	r = e.run(strings.TrimSuffix(lines(rec("a", `{"n":2}`, 1), streamState("a", "2")), "\n"), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 || len(r.states()) != 1 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
}

// TestDeepNesting: data nested 10,000 levels deep is valid JSON and passes
// through as it is (one more level is refused, above).
func TestDeepNesting(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
	r := e.run(lines(rec("a", deep, 1), streamState("a", "1")), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 || len(r.states()) != 1 {
		t.Fatalf("exit %d: %.1000s", r.code, r.stdout)
	}
	if n := len(e.events("a")); n != 1 {
		t.Fatalf("%d events", n)
	}
}

func TestDuplicateKeysPassThrough(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append", cursor: []string{"ts"}}))
	r := e.run(lines(rec("a", `{"x":1,"x":2,"ts":"2000-01-01T00:00:00Z","ts":1628080068}`, 1)), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	evs := e.events("a")
	if len(evs) != 1 || keenTS(evs[0]) != "2021-08-04T12:27:48Z" || fmt.Sprint(evs[0]["x"]) != "2" {
		t.Fatalf("the last of duplicate keys counts: %v", evs)
	}
	e.noRejections()
}

func TestBadFiles(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	good := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	write := func(name, body string) string {
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, config, catalog, want string
	}{
		{"empty catalog", e.config(nil), write("empty.json", ""), "The catalog is not valid JSON"},
		{"malformed catalog", e.config(nil), write("bad.json", `{"streams":[`), "The catalog is not valid JSON"},
		{"catalog of the wrong shape", e.config(nil), write("shape.json", `{"streams":{"a":1}}`), "The catalog is invalid: /streams: expected array, but got object"},
		{"empty config", write("c1.json", ""), good, "The config is not valid JSON"},
		{"config of the wrong shape", write("c2.json", `[]`), good, "The config is invalid: config: expected object, but got array"},
		{"missing catalog file", e.config(nil), filepath.Join(e.dir, "nope.json"), "Cannot read the catalog file"},
		// Paths that never end: read up to a bound, not until memory runs out.
		{"a config that never ends", "/dev/zero", good, "The config file /dev/zero is over 1 MiB"},
		{"a catalog that never ends", e.config(nil), "/dev/zero", "The catalog file /dev/zero is over 64 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run("", "write", "--config", tt.config, "--catalog", tt.catalog)
			tr := r.trace(t)
			if r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), tt.want) {
				t.Fatalf("exit %d trace %v", r.code, tr)
			}
		})
	}
}

// TestSIGTERMWhileReadingTheConfig: a config path that blocks (a FIFO no
// one writes) does not make the connector deaf to the platform's SIGTERM.
func TestSIGTERMWhileReadingTheConfig(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	fifo := filepath.Join(e.dir, "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "check", "--config", fifo)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once the connector holds the FIFO open for reading, opening it for
	// writing no longer blocks: the connector is then blocked in its read.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	began := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("SIGTERM did not end a check blocked reading its config")
	}
	if !strings.Contains(out.String(), `"status":"FAILED"`) || !strings.Contains(out.String(), "Stopped while reading the config file") {
		t.Fatalf("after %v: %s", time.Since(began), out.String())
	}
}

// TestHugeRecord: a record of 100 MiB is read through without being held
// (no line is held past 4 MiB) and meets the oversized policy; nothing
// before or after it is lost, and the process stays small. So does a record
// of 4 MiB of property names that all need renaming.
func TestHugeRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a record of 100 MiB")
	}
	limit := int64(128) // MiB of peak memory
	if raceDetector {
		limit = 512
	}
	names := func(size int, format string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; b.Len() < size; i++ {
			fmt.Fprintf(&b, format, i)
		}
		return b.String() + `"z":1}`
	}
	// The 100 MiB record is streamed to the connector, never held here:
	// the test's own memory (the race detector multiplies it) stays small.
	blob := func() io.Reader {
		return io.MultiReader(strings.NewReader(`{"blob":"`), io.LimitReader(repeat('z'), 100<<20), strings.NewReader(`"}`))
	}
	text := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	for _, tt := range []struct {
		name string
		data func() io.Reader
		fits bool // conformed, the event is within Keen's limit
	}{
		{"100 MiB", blob, false},
		{"4 MiB of names to rename", text(names(4<<20-100, `"a.%d":0,`)), false},
		// Escapes written out make each name 10 bytes shorter: 1.5 MB of
		// them conform to 813 KB, so they are conformed and sent.
		{"1.5 MB of names to rename, shorter when renamed", text(names(1500000, `"\u0061\u002e%d":0,`)), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
			input := func() io.Reader {
				first := rec("a", `{"n":1}`, 1) + "\n"
				head, tail, _ := strings.Cut(rec("a", "DATA", 1), "DATA")
				rest := "\n" + lines(rec("a", `{"n":2}`, 1), streamState("a", "1"))
				return io.MultiReader(strings.NewReader(first+head), tt.data(), strings.NewReader(tail+rest))
			}
			r := e.runFrom(input(), "write", "--config", e.config(map[string]any{"oversized_records": "skip"}), "--catalog", cat)
			rejected, events := true, 2
			if tt.fits {
				rejected, events = false, 3
			}
			if r.code != 0 || rejected != strings.Contains(r.stdout, `"rejectedRecordCount":1.0`) || rejected != strings.Contains(r.logs(), "Skipped the record on input line 2") {
				t.Fatalf("exit %d: %s", r.code, r.stdout[max(0, len(r.stdout)-3000):])
			}
			if n := len(e.events("a")); n != events {
				t.Fatalf("%d events, want %d", n, events)
			}
			peak := r.peakMemory()
			t.Logf("peak memory %d MiB", peak)
			if peak < 0 || peak > limit {
				t.Fatalf("peak memory %d MiB, over %d MiB (or not in the summary)", peak, limit)
			}
			if tt.fits {
				return
			}
			r = e.runFrom(input(), "write", "--config", e.config(nil), "--catalog", cat)
			if r.code == 0 || !r.failed("system_error", `Input line 2: a record of stream "a" is too large`) || len(r.states()) != 0 {
				t.Fatalf("oversized_records fail: exit %d: %.2000s", r.code, r.stdout)
			}
		})
	}
}

// repeat is an endless reader of one byte.
type repeat byte

func (c repeat) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// TestLongLines: a line over 4 MiB that is not a record naming its
// stream ends the sync with a system_error that says what it is; no state
// after it is echoed.
func TestLongLines(t *testing.T) {
	blob := strings.Repeat("z", 5<<20)
	tests := []struct{ name, line, want string }{
		{"a state", `{"type":"STATE","state":{"data":{"b":"` + blob + `"}}}`, `Input line 1 is a message of %d bytes of type "STATE": only a RECORD may be over 4 MiB`},
		{"not JSON", `{"type":"RECORD","record":{"stream":"a","data":{"b":"` + blob, `Input line 1 (%d bytes) is not a valid Airbyte message: unexpected end of JSON`},
		{"a record without its stream", `{"type":"RECORD","record":{"data":{"b":"` + blob + `"}}}`, `Input line 1 is a RECORD of %d bytes without a stream name`},
		{"a stream not in the catalog", `{"type":"RECORD","record":{"stream":"b","data":{"b":"` + blob + `"}}}`, `Input line 1 is a record of stream "b", which is not in the configured catalog`},
	}
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(lines(tt.line, streamState("a", "1")), "write", "--config", e.config(map[string]any{"oversized_records": "skip"}), "--catalog", cat)
			want := tt.want
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, len(tt.line))
			}
			if r.code == 0 || !r.failed("system_error", want) || len(r.states()) != 0 {
				t.Fatalf("exit %d: %.2000s", r.code, r.stdout)
			}
		})
	}
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

// TestKill9: a sync killed mid-way has echoed no state ahead of its records.
func TestKill9(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	go func() {
		w := bufio.NewWriter(stdin)
		for n := 1; n <= 200000; n++ {
			fmt.Fprintln(w, rec("a", fmt.Sprintf(`{"n":%d}`, n), 1))
			if n%100 == 0 {
				fmt.Fprintln(w, streamState("a", strconv.Itoa(n)))
			}
		}
		w.Flush()
	}()
	sc := bufio.NewScanner(stdout)
	states := 0
	last := 0
	for sc.Scan() {
		var m struct {
			State struct {
				Stream struct {
					StreamState struct {
						Cursor int `json:"cursor"`
					} `json:"stream_state"`
				} `json:"stream"`
			} `json:"state"`
			Type string `json:"type"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Type == "STATE" {
			states++
			last = m.State.Stream.StreamState.Cursor
			if states == 20 {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}
	_ = cmd.Wait()
	if states < 20 {
		t.Fatalf("only %d states before the kill", states)
	}
	got := byField(e.events("a"), "n")
	for n := 1; n <= last; n++ {
		if got[strconv.Itoa(n)] == nil {
			t.Fatalf("state %d was echoed but record %d is not in Keen", last, n)
		}
	}
}

// TestBrokenPipe: the platform stops reading stdout; the connector stops
// promptly with a non-zero exit and says why on stderr.
func TestBrokenPipe(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, stderr := e.startSync(t, cat)
	stdout.Close()
	go func() {
		w := bufio.NewWriter(stdin)
		for n := 1; n <= 2_000_000; n++ {
			if _, err := fmt.Fprintln(w, rec("a", fmt.Sprintf(`{"n":%d}`, n), 1)); err != nil {
				return
			}
			if n%100 == 0 {
				fmt.Fprintln(w, streamState("a", strconv.Itoa(n)))
			}
		}
		w.Flush()
		stdin.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("want exit 1, got %v", err)
		}
		if !strings.Contains(stderr.String(), "cannot write to stdout") {
			t.Fatalf("stderr: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after stdout closed")
	}
}

// TestSilentStdin: a source that keeps stdin open and says nothing costs no
// CPU, and the states of what it sent still come out.
func TestSilentStdin(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.Contains(sc.Text(), `"type":"STATE"`) {
	}
	ticks := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return u + s
	}
	before := ticks()
	time.Sleep(time.Second)
	if used := ticks() - before; used > 20 { // clock ticks of 10 ms: a busy loop would use about 100
		t.Fatalf("%d clock ticks of CPU in a second of silence", used)
	}
	stdin.Close()
	for sc.Scan() {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFirstProgressLine: the first progress line comes about 5 s after the
// start, not 30 s, with what was read, acknowledged and echoed.
func TestFirstProgressLine(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	began := time.Now()
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Progress: ") {
				got <- sc.Text()
				break
			}
		}
		close(got)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-got:
		if !ok {
			t.Fatal("the output ended without a progress line")
		}
		if d := time.Since(began); d > 12*time.Second {
			t.Errorf("the first progress line came after %v", d)
		}
		if !strings.Contains(line, "Progress: 1 record read") || !strings.Contains(line, "1 acknowledged by Keen's brokers, 1 state read, 1 echoed") {
			t.Errorf("progress line: %s", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no progress line within 20 s")
	}
	stdin.Close()
	_ = cmd.Wait()
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
	for _, s := range []string{`"cursor":1000}`, `"cursor":2000}`, `"cursor":3000}`, "acknowledged nothing for", "records in flight; waiting for them, up to 5m0s", "acknowledge records again, after 1m"} {
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

// TestOverwriteWithAWriteKey: overwrite needs the master key; a key the
// brokers accept but the API refuses fails before anything is written.
func TestOverwriteWithAWriteKey(t *testing.T) {
	e := newEnv(t, emulator.Options{WriteKey: "write-only-" + secretKey})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "users", mode: "overwrite", syncID: 4}))
	r := e.run(lines(rec("users", `{"a":1}`, 1)), "write", "--config", e.config(map[string]any{"api_key": "write-only-" + secretKey}), "--catalog", cat)
	tr := r.trace(t)
	if r.code != 1 || tr["failure_type"] != "config_error" || !strings.Contains(tr["message"].(string), `Stream "users" replaces collection "users", which needs the master key`) || !strings.Contains(tr["message"].(string), "the API key is not the project's master key") {
		t.Fatalf("exit %d trace %v", r.code, tr)
	}
	if n := len(e.events("users")); n != 0 {
		t.Fatalf("%d events written before the failed delete", n)
	}
}
