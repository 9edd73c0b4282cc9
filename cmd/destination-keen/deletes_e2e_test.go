package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"destination-keen/tools/keenlocal/emulator"
)

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
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
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
	})
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
