package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"destination-keen/internal/keen"
	"destination-keen/tools/keenlocal/emulator"
)

// Exactly once: a sync that fails part-way is retried by Airbyte from the
// last state it echoed; the records after that state come again, and their
// uniqueness tokens keep Keen from storing them twice.

// replayInput is a sync of records 1..n of streams a and b (alternating,
// with a primary key id and a cursor u), with a state of the given kind
// after every 100 records, as lines; stateAt[i] is the record count the
// state on line i covers.
func replayInput(kind string, n int) (lines []string, stateAt map[int]int) {
	stateAt = map[int]int{}
	for i := 1; i <= n; i++ {
		stream := "a"
		if i%2 == 0 {
			stream = "b"
		}
		lines = append(lines, rec(stream, fmt.Sprintf(`{"id":%d,"u":%d,"v":"x"}`, i, 1000+i), 1700000000000))
		if i%100 == 0 {
			switch kind {
			case "STREAM":
				lines = append(lines, streamState("a", strconv.Itoa(i)), streamState("b", strconv.Itoa(i)))
				stateAt[len(lines)-1] = i
			case "GLOBAL":
				lines = append(lines, fmt.Sprintf(`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"cursor":%d},"stream_states":[]}}}`, i))
			case "LEGACY":
				lines = append(lines, fmt.Sprintf(`{"type":"STATE","state":{"data":{"cursor":%d}}}`, i))
			}
			stateAt[len(lines)-1] = i
		}
	}
	return lines, stateAt
}

// keyedCatalog: streams a and b, incremental append, primary key id,
// cursor u.
func keyedCatalog() map[string]any {
	var streams []any
	for _, name := range []string{"a", "b"} {
		streams = append(streams, map[string]any{
			"stream":                map[string]any{"name": name, "json_schema": map[string]any{"type": "object"}, "supported_sync_modes": []string{"incremental"}},
			"sync_mode":             "incremental",
			"destination_sync_mode": "append",
			"cursor_field":          []string{"u"},
			"primary_key":           [][]string{{"id"}},
		})
	}
	return map[string]any{"streams": streams}
}

// stopMidway runs the first attempt: every line up to record cut (no state
// after the last multiple of 100 below it) goes in; once the brokers hold
// all those records and the states before them are out, stop ends the
// attempt (kill -9, or an outage past the delivery timeout). It returns the
// record count covered by the last state echoed.
func stopMidway(t *testing.T, e *env, cat string, config map[string]any, lines []string, stateAt map[int]int, cut int, stop func(p *os.Process, stdin io.Writer, rest []string)) int {
	t.Helper()
	cmd, stdin, stdout, _ := e.startSyncWith(t, cat, config)
	var in strings.Builder
	states, next := 0, len(lines)
	for i, l := range lines {
		in.WriteString(l + "\n")
		if strings.Contains(l, `"type":"STATE"`) {
			states++
		}
		if strings.Contains(l, fmt.Sprintf(`"id":%d,`, cut)) {
			next = i + 1
			break
		}
	}
	if _, err := io.WriteString(stdin, in.String()); err != nil {
		t.Fatal(err)
	}
	lastState := 0
	echoed := 0
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	// A connector that echoes too little is killed, which ends the scan.
	stuck := time.AfterFunc(60*time.Second, func() { _ = cmd.Process.Kill() })
	for echoed < states && sc.Scan() {
		var m struct{ Type string }
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Type == "STATE" {
			echoed++
		}
	}
	stuck.Stop()
	if echoed < states {
		t.Fatalf("%d states echoed within a minute, want %d", echoed, states)
	}
	for i := range lines {
		if stateAt[i] > lastState && stateAt[i] <= cut {
			lastState = stateAt[i]
		}
	}
	// Every record fed is stored, the ones after the last state included.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if held, err := e.emu.WaitEvents(ctx, cut, "a", "b"); err != nil || held != cut {
		t.Fatalf("the brokers hold %d records of %d: %v", held, cut, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	stop(cmd.Process, stdin, lines[next:])
	_ = cmd.Wait()
	stdin.Close()
	return lastState
}

// resume runs the retried attempt: every line after the state that covers
// lastState, to the end. The source reads the records again, so they come
// with a later emitted_at, as in a real retry.
func resume(t *testing.T, e *env, cat string, config map[string]any, lines []string, stateAt map[int]int, lastState int) result {
	t.Helper()
	from := 0
	for i := range lines {
		if stateAt[i] == lastState {
			from = i + 1
		}
	}
	again := strings.ReplaceAll(strings.Join(lines[from:], "\n")+"\n", `"emitted_at":1700000000000`, `"emitted_at":1700000099999`)
	r := e.run(again, "write", "--config", e.config(config), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("the retried sync failed: exit %d\n%s", r.code, r.stdout)
	}
	return r
}

// exactlyOnce checks that records 1..n are each in their collection once,
// and returns how many events Keen dropped as duplicates.
func exactlyOnce(t *testing.T, e *env, n int) int {
	t.Helper()
	total := 0
	for _, c := range []string{"a", "b"} {
		evs := e.events(c)
		ids := byField(evs, "id")
		if len(ids) != len(evs) {
			t.Fatalf("collection %s: %d events for %d records", c, len(evs), len(ids))
		}
		total += len(evs)
	}
	if total != n {
		t.Fatalf("%d events for %d records", total, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dups, err := e.emu.Duplicates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.noRejections()
	return dups["a"] + dups["b"]
}

func kill9(p *os.Process, _ io.Writer, _ []string) { _ = p.Kill() }

func TestRetriedSyncAfterKill(t *testing.T) {
	for _, kind := range []string{"STREAM", "GLOBAL", "LEGACY"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			cat := e.write("catalog.json", keyedCatalog())
			lines, stateAt := replayInput(kind, 1000)
			last := stopMidway(t, e, cat, nil, lines, stateAt, 650, kill9)
			if last != 600 {
				t.Fatalf("the last state echoed covers %d records, want 600", last)
			}
			resume(t, e, cat, nil, lines, stateAt, last)
			if dups := exactlyOnce(t, e, 1000); dups != 50 {
				t.Fatalf("%d events dropped as duplicates, want the 50 records sent twice", dups)
			}
		})
	}
}

// TestRetriedSyncWithoutTokens: with uniqueness_token off, the same retry
// stores the resent records twice, as it did before tokens: the contrast
// that shows the tokens at work above.
func TestRetriedSyncWithoutTokens(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", keyedCatalog())
	off := map[string]any{"uniqueness_token": "off"}
	lines, stateAt := replayInput("STREAM", 1000)
	last := stopMidway(t, e, cat, off, lines, stateAt, 650, kill9)
	resume(t, e, cat, off, lines, stateAt, last)
	if n := len(e.events("a")) + len(e.events("b")); n != 1050 {
		t.Fatalf("%d events, want 1050 (50 twice)", n)
	}
}

// TestRetriedSyncAfterOutage: the first attempt fails with a transient_error
// (the brokers gone past delivery_timeout_seconds) after the brokers stored
// records whose state never came out; the retry adds no duplicates.
func TestRetriedSyncAfterOutage(t *testing.T) {
	e := newEnv(t, emulator.Options{DataDir: t.TempDir()})
	cat := e.write("catalog.json", keyedCatalog())
	config := map[string]any{"delivery_timeout_seconds": 6}
	lines, stateAt := replayInput("STREAM", 1000)
	last := stopMidway(t, e, cat, config, lines, stateAt, 650, func(_ *os.Process, stdin io.Writer, rest []string) {
		// The brokers go; the next 50 records wait for them, and after 6 s
		// the connector gives up with a transient_error.
		e.emu.StopKafka()
		if _, err := io.WriteString(stdin, strings.Join(rest[:50], "\n")+"\n"); err != nil {
			t.Fatal(err)
		}
	})
	if err := e.emu.StartKafka(); err != nil {
		t.Fatal(err)
	}
	resume(t, e, cat, config, lines, stateAt, last)
	if dups := exactlyOnce(t, e, 1000); dups != 50 {
		t.Fatalf("%d duplicates dropped, want 50", dups)
	}
}

// TestUpdatedRows: a row's new version (same key, new cursor) is a new
// event; the same version sent again is not; with tokens off every record
// is an event. The value of earlier versions (primary_key) still works.
func TestUpdatedRows(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		in := lines(rec("a", `{"id":1,"u":1}`, 1), rec("a", `{"id":1,"u":2}`, 1), rec("a", `{"id":1,"u":2}`, 1), rec("a", `{"id":2,"u":2}`, 1),
			rec("a", `{"u":3}`, 1), // no key value: no token
			streamState("a", "1"))
		for _, tt := range []struct {
			policy string
			want   int
		}{{"keyed_streams", 4}, {"primary_key", 4}, {"off", 5}} {
			t.Run(tt.policy, func(t *testing.T) {
				e := newEnvOver(t, tr, emulator.Options{})
				cat := e.write("catalog.json", keyedCatalog())
				r := e.run(in, "write", "--config", e.config(map[string]any{"uniqueness_token": tt.policy}), "--catalog", cat)
				if r.code != 0 {
					t.Fatalf("exit %d:\n%s", r.code, r.stdout)
				}
				if n := len(e.events("a")); n != tt.want {
					t.Fatalf("%d events, want %d", n, tt.want)
				}
				if tt.policy != "off" && !strings.Contains(r.logs(), "uniqueness tokens from the primary key [id], the cursor u and the record's content") {
					t.Fatalf("the summary does not say where tokens come from:\n%s", r.logs())
				}
				if deprecated := strings.Contains(r.logs(), `Config: uniqueness_token: "primary_key" is the value of an earlier version and now means "keyed_streams"`); deprecated != (tt.policy == "primary_key") {
					t.Fatalf("a WARN for the earlier value: %v\n%s", deprecated, r.logs())
				}
			})
		}
	})
}

// TestRealSourcesTwice: the corpus synced twice into one project, as two
// attempts of one sync (same sync_id): every stream with a primary key
// holds one event per record.
func TestRealSourcesTwice(t *testing.T) {
	checked := 0 // streams with a primary key and records, over the corpus
	defer func() {
		if checked == 0 && !t.Failed() && !t.Skipped() {
			t.Error("no stream of the corpus has a primary key: the test checked nothing")
		}
	}()
	for _, s := range loadSources(t) {
		t.Run(s.name, func(t *testing.T) {
			var cat map[string]any
			if err := json.Unmarshal(s.catalog, &cat); err != nil {
				t.Fatal(err)
			}
			keyed := map[string]bool{}
			for _, x := range cat["streams"].([]any) {
				cs := x.(map[string]any)
				cs["sync_id"] = 4242 // the platform's job id, shared by the attempts
				st := cs["stream"].(map[string]any)
				if k, _ := cs["primary_key"].([]any); len(k) > 0 {
					keyed[st["name"].(string)] = true
				} else if k, _ := st["source_defined_primary_key"].([]any); len(k) > 0 {
					keyed[st["name"].(string)] = true
				}
			}
			e := newEnv(t, emulator.Options{})
			b, _ := json.Marshal(cat)
			catPath := filepath.Join(e.dir, "catalog.json")
			if err := os.WriteFile(catPath, b, 0o600); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if r := e.run(s.input, "write", "--config", e.config(nil), "--catalog", catPath); r.code != 0 {
					t.Fatalf("exit %d:\n%s", r.code, r.stdout)
				}
			}
			perStream := map[string]int{}
			for _, r := range s.records {
				perStream[r.Stream]++
			}
			for stream, n := range perStream {
				if !keyed[stream] {
					continue
				}
				checked++
				if got := len(e.events(collectionOf(t, stream))); got != n {
					t.Errorf("stream %s (primary key): %d events after two syncs of %d records", stream, got, n)
				}
			}
			t.Logf("%d of %d streams have a primary key", len(keyed), len(perStream))
		})
	}
}

// TestChangedRowsLand: a token drops only a record sent again unchanged.
// Two versions of a row under the same key and cursor value both reach
// Keen: inside one sync (Airbyte's own acceptance data has two rates of
// id 2 on one date), and across syncs (a report re-read with a corrected
// figure, the common case for ad and analytics sources whose key holds
// the date they use as cursor). The unchanged rows read again add nothing.
func TestChangedRowsLand(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		exchange := cstream{name: "exchange_rate", mode: "append", key: [][]string{{"id"}}, cursor: []string{"date"}, syncID: 1}
		ads := func(sync int) cstream {
			return cstream{name: "ads_insights", mode: "append", key: [][]string{{"date_start"}, {"ad_id"}}, cursor: []string{"date_start"}, syncID: sync}
		}
		tests := []struct {
			name       string
			collection string
			syncs      []struct {
				s  cstream
				in []string
			}
			want []string // the rows Keen holds, by their data
			dups int      // events Keen dropped by their token
		}{
			{"inside one sync", "exchange_rate", []struct {
				s  cstream
				in []string
			}{{exchange, []string{
				rec("exchange_rate", `{"id":1,"currency":"USD","date":"2020-08-29T00:00:00Z","NZD":1.14}`, 1),
				rec("exchange_rate", `{"id":2,"currency":"EUR","date":"2020-08-31T00:00:00Z","NZD":3.89}`, 1),
				rec("exchange_rate", `{"id":2,"currency":"EUR","date":"2020-08-31T00:00:00Z","NZD":3.99}`, 1),
				rec("exchange_rate", `{"id":1,"currency":"USD","date":"2020-08-29T00:00:00Z","NZD":1.14}`, 2), // read again: a duplicate
			}}}, []string{`{"NZD":1.14,"currency":"USD","date":"2020-08-29T00:00:00Z","id":1}`, `{"NZD":3.89,"currency":"EUR","date":"2020-08-31T00:00:00Z","id":2}`, `{"NZD":3.99,"currency":"EUR","date":"2020-08-31T00:00:00Z","id":2}`}, 1},
			{"across syncs", "ads_insights", []struct {
				s  cstream
				in []string
			}{
				{ads(1), []string{rec("ads_insights", `{"date_start":"2024-01-01","ad_id":"a1","clicks":5}`, 1), rec("ads_insights", `{"date_start":"2024-01-01","ad_id":"a2","clicks":3}`, 1)}},
				{ads(2), []string{rec("ads_insights", `{"date_start":"2024-01-01","ad_id":"a1","clicks":7}`, 2), rec("ads_insights", `{"date_start":"2024-01-01","ad_id":"a2","clicks":3}`, 2)}},
			}, []string{`{"ad_id":"a1","clicks":5,"date_start":"2024-01-01"}`, `{"ad_id":"a1","clicks":7,"date_start":"2024-01-01"}`, `{"ad_id":"a2","clicks":3,"date_start":"2024-01-01"}`}, 1},
			// A keyed record without a cursor value: its token holds the sync
			// and the content, never the key alone.
			{"a keyed record without a cursor value", "users", []struct {
				s  cstream
				in []string
			}{
				{cstream{name: "users", mode: "append", key: [][]string{{"id"}}, cursor: []string{"u"}, syncID: 1}, []string{rec("users", `{"id":1,"v":1}`, 1), rec("users", `{"id":1,"v":1}`, 1)}},
				{cstream{name: "users", mode: "append", key: [][]string{{"id"}}, cursor: []string{"u"}, syncID: 2}, []string{rec("users", `{"id":1,"v":2}`, 2)}},
			}, []string{`{"id":1,"v":1}`, `{"id":1,"v":2}`}, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnvOver(t, tr, emulator.Options{})
				for _, sync := range tt.syncs {
					e.accept(t, []cstream{sync.s}, append(sync.in, streamState(sync.s.name, "1"), complete(sync.s.name)))
				}
				sameRecords(t, tt.collection, tt.want, e.stored(tt.collection))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				dups, err := e.emu.Duplicates(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if dups[tt.collection] != tt.dups {
					t.Fatalf("%d events dropped by their token, want %d (the unchanged rows read again)", dups[tt.collection], tt.dups)
				}
			})
		}
	})
}

// TestTokenInputs: the connector derives each token from the documented
// fields (keen's TokenInput) of the record as the source sent it: the
// collection, the key values, the cursor value and the content, and the
// sync's ID for a snapshot.
func TestTokenInputs(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		data := `{"id":1,"currency":"USD","date":"2020-08-29T00:00:00Z","NZD":1.14}`
		tests := []struct {
			name string
			s    cstream
			in   keen.TokenInput
		}{
			{"incremental", cstream{name: "exchange_rate", mode: "append", key: [][]string{{"id"}}, cursor: []string{"date"}, syncID: 5},
				keen.TokenInput{Collection: "exchange_rate", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`"2020-08-29T00:00:00Z"`), Content: []byte(data)}},
			{"full refresh snapshot", cstream{name: "exchange_rate", mode: "append", key: [][]string{{"id"}}, syncMode: "full_refresh", syncID: 5},
				keen.TokenInput{Collection: "exchange_rate", SyncID: "5", Key: [][]byte{[]byte(`1`)}, Content: []byte(data)}},
			{"refresh generation", cstream{name: "exchange_rate", mode: "append", key: [][]string{{"id"}}, cursor: []string{"date"}, syncID: 5, gen: 3, minGen: 3},
				keen.TokenInput{Collection: "exchange_rate", Generation: "3", Key: [][]byte{[]byte(`1`)}, Cursor: []byte(`"2020-08-29T00:00:00Z"`), Content: []byte(data)}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnvOver(t, tr, emulator.Options{})
				e.accept(t, []cstream{tt.s}, []string{rec("exchange_rate", data, 1), complete("exchange_rate")})
				var tk keen.Tokener
				want := string(tk.Append(nil, &tt.in))
				evs := e.events("exchange_rate")
				if len(evs) != 1 {
					t.Fatalf("%d events", len(evs))
				}
				if got := evs[0]["keen"].(map[string]any)["uniqueness_token"]; got != want {
					t.Fatalf("token %v, want %s", got, want)
				}
			})
		}
	})
}

// TestTokenTally: the summary counts, per stream, the events with a token
// derived here, with the source's own, and with none, for every mix.
func TestTokenTally(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		own := func(id string) string { return `"keen":{"uniqueness_token":"` + id + `"}` }
		tests := []struct {
			name   string
			s      cstream
			in     []string
			want   string
			absent []string
		}{
			{"no key, one record with its own token", cstream{name: "a", mode: "append"},
				[]string{`{"n":1}`, `{"n":2,` + own("t2") + `}`, `{"n":3}`},
				`Stream "a" -> "a": 3 records; uniqueness tokens: the source's own for 1, none for 2 (no primary key`, nil},
			{"no key, no token", cstream{name: "a", mode: "append"},
				[]string{`{"n":1}`},
				`Stream "a" -> "a": 1 record; no uniqueness tokens (no primary key`, []string{"source's own"}},
			{"a key: derived, the source's own, and none", cstream{name: "a", mode: "append", key: [][]string{{"id"}}, cursor: []string{"u"}},
				[]string{`{"id":1,"u":1}`, `{"id":2,"u":1,` + own("t2") + `}`, `{"u":1}`},
				`the cursor u and the record's content (and the sync's ID for a record without a cursor value) for 1, the source's own for 1, none for 1 (a key value, or the cursor and the sync_id, missing)`, nil},
			{"a key: all derived", cstream{name: "a", mode: "append", key: [][]string{{"id"}}, cursor: []string{"u"}},
				[]string{`{"id":1,"u":1}`, `{"id":2,"u":1}`},
				`for a record without a cursor value) for 2`, []string{"source's own", "none for"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnvOver(t, tr, emulator.Options{})
				var in []string
				for _, d := range tt.in {
					in = append(in, rec("a", d, 1))
				}
				r := e.accept(t, []cstream{tt.s}, in)
				var summary string
				for l := range strings.Lines(r.logs()) {
					if strings.HasPrefix(l, `Stream "a" -> "a": `) {
						summary = l
					}
				}
				if !strings.Contains(summary, tt.want) {
					t.Fatalf("summary %q lacks %q", summary, tt.want)
				}
				for _, a := range tt.absent {
					if strings.Contains(summary, a) {
						t.Fatalf("summary %q holds %q", summary, a)
					}
				}
			})
		}
	})
}
