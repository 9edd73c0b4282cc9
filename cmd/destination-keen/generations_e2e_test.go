package main

import (
	"fmt"
	"strings"
	"testing"

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
	tests := []struct {
		name   string
		stream cstream
		gen    string // the generation the new events carry
	}{
		{"overwrite", cstream{name: "users", mode: "overwrite"}, ""},
		// The attempts of a refresh share its generation: the retried
		// attempt's records are told from the killed one's by their tokens.
		{"refresh", cstream{name: "users", mode: "append", gen: 7, minGen: 7, key: [][]string{{"new"}}, syncID: 99}, "7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
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
			r := e.run(lines(rec("users", `{"new":1}`, 1), rec("users", `{"new":2}`, 1), rec("users", `{"new":3}`, 1), streamState("users", "3")),
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
	e := newEnv(t, emulator.Options{})
	e.seed("users", 3)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "users", mode: "append", gen: 2, minGen: 2}))
	r := e.run(lines(streamState("users", "0")), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	if n := len(e.events("users")); n != 0 {
		t.Fatalf("%d events after a Clear", n)
	}
}

// TestIncompleteStreamKeepsOldEvents: a stream the source reports
// INCOMPLETE keeps its old events; one reported COMPLETE has them replaced.
func TestIncompleteStreamKeepsOldEvents(t *testing.T) {
	status := func(stream, s string) string {
		return fmt.Sprintf(`{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":%q},"status":%q}}}`, stream, s)
	}
	e := newEnv(t, emulator.Options{})
	e.seed("a", 2)
	e.seed("b", 2)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "overwrite"}, cstream{name: "b", mode: "overwrite"}))
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
	if !strings.Contains(r.logs(), `Stream "a" ended INCOMPLETE`) {
		t.Errorf("no WARN for the incomplete stream:\n%s", r.logs())
	}
}

// TestFailedDeleteAfterTheStream: the brokers took the new generation but
// Keen's API refuses the delete: a transient_error that says the old
// events are still there; nothing was lost.
func TestFailedDeleteAfterTheStream(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	e.seed("users", 2)
	e.emu.FailDeletes(1, 400, "") // refused at once: 5xx would be retried for minutes
	cat := e.write("catalog.json", catalogDoc(cstream{name: "users", mode: "overwrite"}))
	r := e.run(lines(rec("users", `{"new":1}`, 1), streamState("users", "1")), "write",
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
