package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"destination-keen/schemas"
	"destination-keen/tools/keenlocal/emulator"
)

// optionCase sets one option to value and checks its effect.
type optionCase struct {
	option string
	value  any // replaced, for the addresses, by the emulator's own
	opts   emulator.Options
	stream cstream
	input  []string
	check  func(t *testing.T, e *env, r result)
}

// TestEveryOptionReachesItsComponent sets each option of the spec to a
// value other than its default and observes it where it is used: in what
// Keen holds, in the batches the brokers receive, in the API's requests, or
// in what the sync reports. A field of the spec without a case here fails
// the test.
func TestEveryOptionReachesItsComponent(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("x", 1_000_100) + `"}`
	tests := []optionCase{
		{"project_id", "otherproject", emulator.Options{ProjectID: "otherproject"}, cstream{name: "a", mode: "overwrite", syncID: 2}, []string{rec("a", `{"n":1}`, 1), complete("a")},
			func(t *testing.T, e *env, r result) {
				// SASL's user on the brokers (the emulator takes no other) and the API's path.
				deletes := 0
				for _, req := range e.emu.Requests() {
					if req.Method == "DELETE" && strings.HasPrefix(req.Path, "/3.0/projects/otherproject/events/a") {
						deletes++
					}
				}
				if len(e.events("a")) != 1 || deletes != 2 {
					t.Fatalf("%d events, %d deletes in the project's path", len(e.events("a")), deletes)
				}
			}},
		{"api_key", "another-" + secretKey, emulator.Options{APIKey: "another-" + secretKey}, cstream{name: "a", mode: "overwrite", syncID: 2}, []string{rec("a", `{"n":1}`, 1), complete("a")},
			func(t *testing.T, e *env, r result) {
				// The brokers' password and the API's Authorization (the emulator takes no other).
				if len(e.events("a")) != 1 || !strings.Contains(r.logs(), `deleted the events of collection "a"`) {
					t.Fatalf("%d events; the deletes did not go through:\n%s", len(e.events("a")), r.logs())
				}
			}},
		{"infer_timestamp", false, emulator.Options{}, cstream{name: "a", mode: "append", cursor: []string{"ts"}}, []string{rec("a", `{"ts":1628080068}`, 1602637789200)},
			func(t *testing.T, e *env, r result) {
				if evs := e.events("a"); len(evs) != 1 || keenTS(evs[0]) != "2020-10-14T01:09:49.200Z" {
					t.Fatalf("keen.timestamp %v, want emitted_at's", evs)
				}
			}},
		{"kafka_bootstrap_servers", "", emulator.Options{}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1}`, 1)},
			func(t *testing.T, e *env, r result) {
				// The value is set below: the last broker alone is a seed enough.
				if len(e.events("a")) != 1 || !strings.Contains(r.logs(), "kafka_bootstrap_servers="+e.emu.BrokerAddrs()[2]+" ") {
					t.Fatalf("not synced through the one seed given:\n%s", r.logs())
				}
			}},
		{"api_url", "", emulator.Options{}, cstream{name: "a", mode: "overwrite", syncID: 2}, []string{rec("a", `{"n":1}`, 1), complete("a")},
			func(t *testing.T, e *env, r result) {
				// Set below to the emulator's URL with a trailing slash, which is dropped.
				if !strings.Contains(r.logs(), "api_url="+e.emu.APIURL()+" ") || len(e.emu.Requests()) == 0 {
					t.Fatalf("the API was not called at the configured URL:\n%s", r.logs())
				}
			}},
		{"compression", "zstd", emulator.Options{}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1}`, 1), rec("a", `{"n":2}`, 1)},
			func(t *testing.T, e *env, r result) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if codecs, err := e.emu.Codecs(ctx, "a"); err != nil || codecs["zstd"] != 2 || len(codecs) != 1 {
					t.Fatalf("batches by codec %v (%v), want zstd", codecs, err)
				}
			}},
		{"oversized_records", "skip", emulator.Options{}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1}`, 1), rec("a", big, 1)},
			func(t *testing.T, e *env, r result) {
				if r.code != 0 || len(e.events("a")) != 1 {
					t.Fatalf("exit %d, %d events: the oversized record must be skipped", r.code, len(e.events("a")))
				}
			}},
		{"nonconforming_records", "skip", emulator.Options{}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1}`, 1), rec("a", `{"$n":2}`, 1)},
			func(t *testing.T, e *env, r result) {
				if r.code != 0 || len(e.events("a")) != 1 {
					t.Fatalf("exit %d, %d events: the record Keen would drop must be skipped", r.code, len(e.events("a")))
				}
			}},
		{"uniqueness_token", "all_streams", emulator.Options{}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1}`, 1)},
			func(t *testing.T, e *env, r result) {
				evs := e.events("a")
				if tok, _ := evs[0]["keen"].(map[string]any)["uniqueness_token"].(string); !strings.HasPrefix(tok, "dk2_") {
					t.Fatalf("a stream without a primary key got no token: %v", evs[0])
				}
			}},
		{"delivery_timeout_seconds", 5, emulator.Options{}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1}`, 1)},
			func(t *testing.T, e *env, r result) {
				// Its effect (a sync failing after the brokers acknowledged
				// nothing for that long) is TestBrokerOutagePastTheBound's;
				// here, that it reaches the sync.
				if !strings.Contains(r.logs(), "delivery_timeout_seconds=5 ") {
					t.Fatalf("the sync does not run with it:\n%s", r.logs())
				}
			}},
		{"kafka_producers", 2, emulator.Options{}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1}`, 1)},
			func(t *testing.T, e *env, r result) {
				if !strings.Contains(r.logs(), "; 2 producer(s), each with") {
					t.Fatalf("the sink does not run two producers:\n%s", r.logs())
				}
			}},
		{"transport", "https", emulator.Options{}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1}`, 1)},
			func(t *testing.T, e *env, r result) {
				if len(e.events("a")) != 1 || e.emu.BulkRequests() < 2 || !strings.Contains(r.logs(), "Transport https: ") {
					t.Fatalf("%d events, %d bulk requests:\n%s", len(e.events("a")), e.emu.BulkRequests(), r.logs())
				}
			}},
		{"refused_records", "fail", emulator.Options{ExtraRule: refuseMarked}, cstream{name: "a", mode: "append"}, []string{rec("a", `{"n":1,"marked":true}`, 1)},
			func(t *testing.T, e *env, r result) {
				// With transport https (set below): Keen's refusal fails the sync.
				if r.code != 1 || !r.failed("system_error", "refused_records is fail") {
					t.Fatalf("exit %d:\n%s", r.code, r.stdout)
				}
			}},
	}
	var spec struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(schemas.Raw(schemas.ConfigFile), &spec); err != nil {
		t.Fatal(err)
	}
	for name := range spec.Properties {
		if !slices.ContainsFunc(tests, func(tt optionCase) bool { return tt.option == name }) {
			t.Errorf("option %s has no case here", name)
		}
	}
	for _, tt := range tests {
		t.Run(tt.option, func(t *testing.T) {
			if tt.opts.APIKey == "" {
				tt.opts.APIKey = secretKey
			}
			e := newEnv(t, tt.opts)
			value := tt.value
			switch tt.option {
			case "kafka_bootstrap_servers":
				value = e.emu.BrokerAddrs()[2]
			case "api_url":
				value = e.emu.APIURL() + "/"
			case "refused_records":
				e.transport = "https"
			}
			cat := e.write("catalog.json", catalogDoc(tt.stream))
			r := e.run(lines(tt.input...), "write", "--config", e.config(map[string]any{tt.option: value}), "--catalog", cat)
			if r.code != 0 && tt.option != "refused_records" {
				t.Fatalf("exit %d:\n%s", r.code, r.stdout)
			}
			tt.check(t, e, r)
		})
	}
}
