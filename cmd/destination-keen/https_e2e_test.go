package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"destination-keen/tools/keenlocal/emulator"
)

// The HTTPS transport's own behaviour: Keen's word on each event, and the
// faults of its API. What it shares with Kafka runs over both transports in
// the acceptance, input, generations, tokens, conform and deletes files.

// refuseMarked is a rule of Keen's that the connector does not know: an
// event with a property "marked" is refused.
func refuseMarked(_ string, ev emulator.Event) error {
	if _, ok := ev["marked"]; ok {
		return errors.New("marked events are not allowed here")
	}
	return nil
}

// TestHTTPSRefusals: an event Keen refuses over HTTPS is counted in the
// rejectedRecordCount of the state after it (its stream's), in the summary
// with Keen's error name, and named in a WARN once per stream and error;
// the states around it are echoed; the others land. Over Kafka the same
// event is dropped by Keen unseen, which is why HTTPS exists.
func TestHTTPSRefusals(t *testing.T) {
	e := newEnvOver(t, "https", emulator.Options{ExtraRule: refuseMarked})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}, cstream{name: "b", mode: "append"}))
	in := lines(
		rec("a", `{"n":1}`, 1), rec("a", `{"n":2,"marked":true}`, 1), rec("b", `{"n":1,"marked":true}`, 1),
		streamState("a", "1"), // a: 2 records, 1 refused
		rec("a", `{"n":3,"marked":true}`, 1), rec("b", `{"n":2}`, 1),
		streamState("b", "1"), // b: 2 records, 1 refused (the one before a's state)
		streamState("a", "2"), // a: 1 record, refused (before b's state, which does not cover it)
	)
	r := e.run(in, "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	if got, want := r.stateCounts(), "2.0/1.0,2.0/1.0,1.0/1.0"; got != want {
		t.Fatalf("recordCount/rejectedRecordCount %s, want %s", got, want)
	}
	logs := r.logs()
	if n := strings.Count(logs, `Keen refused an event of stream "a": InvalidEventError: marked events are not allowed here`); n != 1 {
		t.Errorf("%d WARNs for stream a's refusals, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, `Keen refused an event of stream "b": InvalidEventError`) {
		t.Errorf("no WARN for stream b:\n%s", logs)
	}
	if !strings.Contains(logs, "Sync summary: 5 records read, 2 acknowledged by Keen, 0 skipped (oversized or breaking Keen's rules), 3 refused by Keen,") ||
		!strings.Contains(logs, `Stream "a" -> "a": 3 records;`) || !strings.Contains(logs, "; 2 refused by Keen (InvalidEventError: 2)") {
		t.Errorf("summary:\n%s", logs)
	}
	if len(e.events("a")) != 1 || len(e.events("b")) != 1 {
		t.Fatalf("events: a %d, b %d", len(e.events("a")), len(e.events("b")))
	}
}

// TestHTTPSRefusalFails: with refused_records fail, Keen's refusal stops
// the sync with a system_error naming the stream and Keen's error, and no
// state after the refused record is echoed.
func TestHTTPSRefusalFails(t *testing.T) {
	e := newEnvOver(t, "https", emulator.Options{ExtraRule: refuseMarked})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	in := lines(rec("a", `{"n":1}`, 1), streamState("a", "1"), rec("a", `{"n":2,"marked":true}`, 1), streamState("a", "2"), rec("a", `{"n":3}`, 1), streamState("a", "3"))
	r := e.run(in, "write", "--config", e.config(map[string]any{"refused_records": "fail"}), "--catalog", cat)
	if r.code == 0 || !r.failed("system_error", `Keen refused an event of stream "a": InvalidEventError: marked events are not allowed here; refused_records is fail`) {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	for _, s := range r.states() {
		if c := fmt.Sprint(s["stream"].(map[string]any)["stream_state"]); c != "map[cursor:1]" {
			t.Fatalf("state %s echoed past the refused record", c)
		}
	}
}

// TestHTTPSFaults: Keen's API answering 429 with Retry-After, 500, slowly,
// or dropping the connection after it stored the events: the sync retries,
// each record lands once (uniqueness tokens absorb the events sent again),
// and every state is echoed.
func TestHTTPSFaults(t *testing.T) {
	tests := []struct {
		name    string
		fault   func(*emulator.Emulator)
		resent  bool // events sent again, which Keen drops by their tokens
		retried bool // a retry is logged
	}{
		{"429 with Retry-After", func(e *emulator.Emulator) { e.FailEvents(2, http.StatusTooManyRequests, "1") }, false, true},
		{"500 then success", func(e *emulator.Emulator) { e.FailEvents(3, http.StatusInternalServerError, "") }, false, true},
		{"a slow answer", func(e *emulator.Emulator) { e.DelayEvents(1500*time.Millisecond, 2) }, false, false},
		{"a connection dropped after the events were stored", func(e *emulator.Emulator) { e.DropEventsConnections(1) }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnvOver(t, "https", emulator.Options{})
			cat := e.write("catalog.json", catalogDoc(cstream{name: "keyed", mode: "append", key: [][]string{{"id"}}, cursor: []string{"id"}}))
			var in []string
			for i := 1; i <= 500; i++ {
				in = append(in, rec("keyed", fmt.Sprintf(`{"id":%d}`, i), 1))
				if i%100 == 0 {
					in = append(in, streamState("keyed", fmt.Sprint(i)))
				}
			}
			tt.fault(e.emu)
			r := e.run(lines(in...), "write", "--config", e.config(nil), "--catalog", cat)
			if r.code != 0 || len(r.states()) != 5 {
				t.Fatalf("exit %d, %d states:\n%s", r.code, len(r.states()), r.stdout)
			}
			if n := len(e.events("keyed")); n != 500 {
				t.Fatalf("%d events stored, want 500", n)
			}
			dups, err := e.emu.Duplicates(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tt.resent != (dups["keyed"] > 0) {
				t.Fatalf("duplicates dropped by Keen: %d; %d requests\n%s", dups["keyed"], e.emu.BulkRequests(), r.logs())
			}
			if tt.retried != strings.Contains(r.logs(), "retrying in") {
				t.Errorf("retry logged: %v, want %v:\n%s", !tt.retried, tt.retried, r.logs())
			}
		})
	}
}

// TestHTTPSWithoutKafka: check and write with transport https need nothing
// of Kafka (the config's brokers refuse connections), and a wrong key or
// project is a config_error that says what to fix.
func TestHTTPSWithoutKafka(t *testing.T) {
	e := newEnvOver(t, "https", emulator.Options{})
	if r := e.run("", "check", "--config", e.config(nil)); !strings.Contains(r.stdout, `"status":"SUCCEEDED"`) {
		t.Fatalf("check: %s", r.stdout)
	}
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	if r := e.run(lines(rec("a", `{"n":1}`, 1), streamState("a", "1")), "write", "--config", e.config(nil), "--catalog", cat); r.code != 0 || len(r.states()) != 1 {
		t.Fatalf("write: exit %d\n%s", r.code, r.stdout)
	}
	tests := []struct {
		name     string
		override map[string]any
		msg      string
	}{
		{"wrong key", map[string]any{"api_key": "e2e-SECRET-wrong"}, "Keen rejected the API key"},
		{"unknown project", map[string]any{"project_id": "nosuch"}, "Keen does not know project"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run("", "check", "--config", e.config(tt.override))
			if !strings.Contains(r.stdout, `"status":"FAILED"`) || !strings.Contains(r.stdout, tt.msg) {
				t.Fatalf("check: %s", r.stdout)
			}
			r = e.run(lines(rec("a", `{"n":1}`, 1)), "write", "--config", e.config(tt.override), "--catalog", cat)
			if r.code == 0 || !r.failed("config_error", tt.msg) {
				t.Fatalf("write: exit %d\n%s", r.code, r.stdout)
			}
			if strings.Contains(r.stdout, "e2e-SECRET-wrong") {
				t.Fatal("the wrong key appears in the output")
			}
		})
	}
}
