package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"destination-keen/tools/keenlocal/emulator"
)

// Overwrite and refreshes without an empty window: a truncating stream's
// events carry their generation, and the older generations are deleted only
// once the stream has ended with every record acknowledged.

// generations counts the events by their generation property, as text.
func generations(evs []map[string]any) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		out[fmt.Sprint(ev["_airbyte_generation_id"])]++
	}
	return out
}

func TestReplaceWithoutAGap(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		tests := []struct {
			name   string
			stream cstream
			gen    string // the generation the new events carry
		}{
			{"overwrite", cstream{name: "users", mode: "overwrite", syncMode: "full_refresh", key: [][]string{{"new"}}, syncID: 3}, "3"},
			// The attempts of a refresh share its generation: the retried
			// attempt's records are told from the killed one's by their tokens.
			{"refresh", cstream{name: "users", mode: "append", gen: 7, minGen: 7, key: [][]string{{"new"}}, syncID: 99}, "7"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnvOver(t, tr, emulator.Options{})
				e.seed("users", 3) // events from before generations
				cat := e.write("catalog.json", catalogDoc(tt.stream))

				// A first attempt killed mid-stream: its records are in Keen, and
				// so are the old events.
				cmd, stdin, stdout, _ := e.startSync(t, cat)
				fmt.Fprint(stdin, lines(rec("users", `{"new":1}`, 1), rec("users", `{"new":2}`, 1), streamState("users", "2")))
				waitForState(t, stdout)
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				stdin.Close()
				if n := len(e.events("users")); n != 5 {
					t.Fatalf("after a killed attempt: %d events, want the 3 old ones and the 2 new", n)
				}

				// The next attempt ends well: only its own events are left.
				r := e.run(lines(rec("users", `{"new":1}`, 1), rec("users", `{"new":2}`, 1), rec("users", `{"new":3}`, 1), streamState("users", "3"), complete("users")),
					"write", "--config", e.config(nil), "--catalog", cat)
				if r.code != 0 {
					t.Fatalf("exit %d:\n%s", r.code, r.stdout)
				}
				evs := e.events("users")
				gens := generations(evs)
				if len(evs) != 3 || len(gens) != 1 || gens["<nil>"] != 0 {
					t.Fatalf("after the sync: %d events of generations %v, want the 3 new ones of one generation", len(evs), gens)
				}
				if tt.gen != "" && gens[tt.gen] != 3 {
					t.Fatalf("generations %v, want %s", gens, tt.gen)
				}
				if !strings.Contains(r.logs(), `deleted the events of collection "users" not of generation`) {
					t.Fatalf("the log does not say what was deleted:\n%s", r.logs())
				}
				e.noRejections()
			})
		}
	})
}

func waitForState(t *testing.T, stdout interface{ Read([]byte) (int, error) }) {
	t.Helper()
	var out strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(out.String(), `"type":"STATE"`) {
		n, err := stdout.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("no state: %v\n%s", err, out.String())
		}
	}
}

// TestClear: a truncating stream that ends with no records (Airbyte's
// Clear) leaves its collection empty.
func TestClear(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		e.seed("users", 3)
		cat := e.write("catalog.json", catalogDoc(cstream{name: "users", mode: "append", gen: 2, minGen: 2}))
		r := e.run(lines(streamState("users", "0"), complete("users")), "write", "--config", e.config(nil), "--catalog", cat)
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.stdout)
		}
		if n := len(e.events("users")); n != 0 {
			t.Fatalf("%d events after a Clear", n)
		}
	})
}

// TestIncompleteStreamKeepsOldEvents: a stream the source reports
// INCOMPLETE keeps its old events; one reported COMPLETE has them replaced.
func TestIncompleteStreamKeepsOldEvents(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		e.seed("a", 2)
		e.seed("b", 2)
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "overwrite", syncID: 4}, cstream{name: "b", mode: "overwrite", syncID: 4}))
		r := e.run(lines(rec("a", `{"new":1}`, 1), status("a", "INCOMPLETE"), rec("b", `{"new":1}`, 1), status("b", "COMPLETE")),
			"write", "--config", e.config(nil), "--catalog", cat)
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.stdout)
		}
		if n := len(e.events("a")); n != 3 {
			t.Errorf("a (INCOMPLETE): %d events, want the 2 old and the new one", n)
		}
		if n := len(e.events("b")); n != 1 {
			t.Errorf("b (COMPLETE): %d events, want only the new one", n)
		}
		if !strings.Contains(r.logs(), `Stream "a" did not complete: the platform reported it INCOMPLETE`) {
			t.Errorf("no WARN for the incomplete stream:\n%s", r.logs())
		}
	})
}

// TestFailedDeleteAfterTheStream: the brokers took the new generation but
// Keen's API refuses the delete: a transient_error that says the old
// events are still there; nothing was lost.
func TestFailedDeleteAfterTheStream(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.seed("users", 2)
	e.emu.FailDeletes(1, 400, "") // refused at once: 5xx would be retried for minutes
	cat := e.write("catalog.json", catalogDoc(cstream{name: "users", mode: "overwrite", syncID: 4}))
	r := e.run(lines(rec("users", `{"new":1}`, 1), streamState("users", "1"), complete("users")), "write",
		"--config", e.config(nil), "--catalog", cat)
	tr := r.trace(t)
	if r.code != 1 || tr["failure_type"] != "transient_error" || !strings.Contains(tr["message"].(string), "they are still there") {
		t.Fatalf("exit %d trace %v", r.code, tr)
	}
	if len(r.states()) != 1 {
		t.Fatalf("the state of the delivered record must be out: %v", r.states())
	}
	if n := len(e.events("users")); n != 3 {
		t.Fatalf("%d events, want the 2 old and the new one", n)
	}
}

// seedGeneration leaves n events of generation gen in collection, as a
// refresh that completed would have.
func (e *env) seedGeneration(collection string, gen, n int) {
	e.t.Helper()
	cat := e.write("seed.json", catalogDoc(cstream{name: collection, mode: "append", gen: gen, minGen: gen}))
	var in []string
	for i := range n {
		in = append(in, rec(collection, fmt.Sprintf(`{"old":%d}`, i), 1))
	}
	in = append(in, complete(collection))
	if r := e.run(lines(in...), "write", "--config", e.config(nil), "--catalog", cat); r.code != 0 {
		e.t.Fatalf("seed: %s", r.stdout)
	}
	if got := generations(e.events(collection)); got[fmt.Sprint(gen)] != n || len(got) != 1 {
		e.t.Fatalf("seed: generations %v, want %d events of generation %d", got, n, gen)
	}
}

// TestOldEventsKeptWithoutCompletion: a truncating stream replaces its old
// events only when the platform reported it COMPLETE (after its last
// record, with no INCOMPLETE or ERROR). Today's platform sends COMPLETE
// for every stream only when the source succeeded; a failed source looks
// like input that just ends. Every other ending keeps the old events, exits
// 0 with every state echoed, and says why.
func TestOldEventsKeptWithoutCompletion(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		const old, fresh = 100, 40
		var records []string
		for i := range fresh {
			records = append(records, rec("users", fmt.Sprintf(`{"new":%d}`, i), 1))
		}
		body := lines(append(records, streamState("users", "40"))...)
		// Fixed generations (an overwrite's is its sync_id): the old one is 1,
		// below the new one; a case below has it above.
		refresh := cstream{name: "users", mode: "append", gen: 2, minGen: 2}
		overwrite := cstream{name: "users", mode: "overwrite", syncID: 2}
		other := cstream{name: "other", mode: "append"}
		tests := []struct {
			name    string
			streams []cstream
			input   string
			kept    bool   // the old events are still there
			why     string // in the log when they are
			silence bool   // the log says the platform sent no status at all
			oldGen  int    // the generation of the old events; 1 when 0
		}{
			{"refresh to a generation below the old one's", []cstream{refresh}, body + lines(complete("users")), false, "", false, 9},
			{"refresh that completed", []cstream{refresh}, body + lines(complete("users")), false, "", false, 0},
			{"overwrite that completed", []cstream{overwrite}, body + lines(complete("users")), false, "", false, 0},
			{"refresh whose input ends (a failed source)", []cstream{refresh}, body, true, "the platform sent no COMPLETE for it", true, 0},
			{"overwrite whose input ends (a failed source)", []cstream{overwrite}, body, true, "the platform sent no COMPLETE for it", true, 0},
			{"refresh with no records whose input ends", []cstream{refresh}, lines(streamState("users", "0")), true, "the platform sent no COMPLETE for it", true, 0},
			{"overwrite with no input at all", []cstream{overwrite}, "", true, "the platform sent no COMPLETE for it", true, 0},
			{"a record, then the source's ERROR trace", []cstream{refresh},
				lines(records[0], `{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1,"error":{"message":"source failed","failure_type":"system_error"}}}`), true, "the input holds an ERROR trace", true, 0},
			{"an ERROR trace after COMPLETE", []cstream{refresh},
				body + lines(complete("users"), `{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1,"error":{"message":"x","stream_descriptor":{"name":"users"}}}}`), true, "ERROR trace", false, 0},
			{"COMPLETE for another stream only", []cstream{refresh, other}, body + lines(complete("other")), true, "the platform sent no COMPLETE for it", false, 0},
			{"COMPLETE for a stream not in the catalog", []cstream{refresh}, body + lines(complete("userz")), true, "the platform sent no COMPLETE for it", false, 0},
			{"a record after COMPLETE", []cstream{refresh}, lines(records[:fresh-1]...) + lines(complete("users"), records[fresh-1]), true, "records of it came after the platform reported it COMPLETE", false, 0},
			{"a record after COMPLETE, then COMPLETE again", []cstream{refresh}, lines(records[:fresh-1]...) + lines(complete("users"), records[fresh-1], complete("users")), false, "", false, 0},
			{"INCOMPLETE then COMPLETE", []cstream{overwrite}, body + lines(status("users", "INCOMPLETE"), complete("users")), true, "the platform reported it INCOMPLETE", false, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnvOver(t, tr, emulator.Options{})
				oldGen := max(tt.oldGen, 1)
				e.seedGeneration("users", oldGen, old)
				cat := e.write("catalog.json", catalogDoc(tt.streams...))
				r := e.run(tt.input, "write", "--config", e.config(nil), "--catalog", cat)
				if r.code != 0 {
					t.Fatalf("exit %d: a sync whose source failed is the platform's to report\n%s", r.code, r.stdout)
				}
				if want := strings.Count(tt.input, `"type":"STATE"`); len(r.states()) != want {
					t.Fatalf("%d states echoed, want %d", len(r.states()), want)
				}
				sent := strings.Count(tt.input, `"type":"RECORD"`)
				gens := generations(e.events("users"))
				oldKey := fmt.Sprint(oldGen)
				if tt.kept {
					if gens[oldKey] != old {
						t.Fatalf("generations %v: the %d old events of generation %d must be kept", gens, old, oldGen)
					}
					if !strings.Contains(r.logs(), tt.why) || !strings.Contains(r.logs(), fmt.Sprintf("are kept next to its %d new event", sent)) {
						t.Fatalf("the log does not say that the old events were kept, how many new ones sit beside them, and why (%q):\n%s", tt.why, r.logs())
					}
				} else if gens[oldKey] != 0 || len(gens) != 1 || gens["2"] != sent {
					t.Fatalf("generations %v: only the %d events of the new generation 2 must be left", gens, sent)
				}
				if n := len(e.events("users")); n != sent+gens[oldKey] {
					t.Fatalf("%d events, want the %d sent and %d old", n, sent, gens[oldKey])
				}
				if got := strings.Contains(r.logs(), "The platform sent no stream status in this sync"); got != tt.silence {
					t.Fatalf("a WARN about a platform that sent no status at all: %v, want %v\n%s", got, tt.silence, r.logs())
				}
			})
		}
	})
}

// TestRefreshOfTheSameRows: two truncate refreshes of an incremental stream
// send the same rows (same keys, cursors and content). Every row of the
// second generation lands (its tokens hold the generation, so Keen does not
// take them for the first one's), and once it completes the collection
// holds exactly the second generation's events.
func TestRefreshOfTheSameRows(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		var rows []string
		for i := range 5 {
			rows = append(rows, rec("users", fmt.Sprintf(`{"id":%d,"u":"2024-01-0%d"}`, i, i+1), 1))
		}
		refresh := func(gen int) cstream {
			return cstream{name: "users", mode: "append", gen: gen, minGen: gen, syncID: gen, key: [][]string{{"id"}}, cursor: []string{"u"}}
		}
		e.accept(t, []cstream{refresh(1)}, append(rows, complete("users")))
		e.accept(t, []cstream{refresh(2)}, append(rows, complete("users")))
		if gens := generations(e.events("users")); len(gens) != 1 || gens["2"] != len(rows) {
			t.Fatalf("generations %v, want the %d rows of generation 2 alone", gens, len(rows))
		}
	})
}

// TestDeleteWaitsForEveryAcknowledgement: an overwrite whose input ended
// with COMPLETE, but whose records the brokers then refuse, fails and
// deletes nothing: the old events are replaced only once every record of
// the stream is acknowledged.
func TestDeleteWaitsForEveryAcknowledgement(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.seedGeneration("users", 1, 10)
	before := len(e.emu.Requests())
	// The brokers hold the first produce request a while, then refuse it and
	// the next ones: the refusal comes after the input has ended.
	e.emu.FailProduce("users", 1000, kerr.PolicyViolation)
	e.emu.DelayProduce(300*time.Millisecond, 1)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "users", mode: "overwrite", syncID: 2}))
	r := e.run(lines(rec("users", `{"new":1}`, 1), rec("users", `{"new":2}`, 1), streamState("users", "2"), complete("users")),
		"write", "--config", e.config(nil), "--catalog", cat)
	if tr := r.trace(t); r.code != 1 || tr["failure_type"] != "system_error" {
		t.Fatalf("exit %d, trace %v: a refused record must fail the sync", r.code, tr)
	}
	if len(r.states()) != 0 {
		t.Fatalf("a state of refused records was echoed: %v", r.states())
	}
	if gens := generations(e.events("users")); gens["1"] != 10 {
		t.Fatalf("generations %v: the 10 old events must be kept", gens)
	}
	for _, req := range e.emu.Requests()[before:] {
		if req.Method == http.MethodDelete {
			t.Fatalf("a delete was sent: %s", req.Path)
		}
	}
}

// TestErrorOfOneStream: an ERROR trace that names a stream keeps that
// stream's old events; another stream that completed is replaced.
func TestErrorOfOneStream(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		e.seedGeneration("a", 1, 2)
		e.seedGeneration("b", 1, 2)
		cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append", gen: 2, minGen: 2}, cstream{name: "b", mode: "append", gen: 2, minGen: 2}))
		r := e.run(lines(rec("a", `{"new":1}`, 1), rec("b", `{"new":1}`, 1), complete("a", "b"),
			`{"type":"TRACE","trace":{"type":"ERROR","emitted_at":1,"error":{"message":"x","stream_descriptor":{"name":"a"}}}}`),
			"write", "--config", e.config(nil), "--catalog", cat)
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.stdout)
		}
		if gens := generations(e.events("a")); gens["1"] != 2 || gens["2"] != 1 {
			t.Errorf("a (named by the ERROR): generations %v, want its 2 old events kept next to the new one", gens)
		}
		if gens := generations(e.events("b")); len(gens) != 1 || gens["2"] != 1 {
			t.Errorf("b (completed): generations %v, want only the new one", gens)
		}
	})
}
