package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"

	"destination-keen/schemas"
	"destination-keen/tools/keenlocal/emulator"
	"destination-keen/tools/protocoldiff/diff"
)

var protocolDir = filepath.Join("..", "..", "..", "shared", "airbyte-protocol")

var official struct {
	once   sync.Once
	schema *jsonschema.Schema // nil when the official definition is not beside the project
	err    error
}

// validateOfficial checks a line the connector printed against the
// official definition's AirbyteMessage, when ../shared/airbyte-protocol is
// beside the project (every end-to-end test's output goes through it).
func validateOfficial(line []byte) error {
	official.once.Do(func() {
		raw, err := os.ReadFile(filepath.Join(protocolDir, "airbyte_protocol.yaml"))
		if err != nil {
			return // not beside the project: the project's schema alone checks
		}
		j, err := diff.ToJSON(raw)
		if err != nil {
			official.err = err
			return
		}
		c := jsonschema.NewCompiler()
		c.Draft = jsonschema.Draft7
		const url = "https://official.invalid/airbyte_protocol.json"
		if official.err = c.AddResource(url, bytes.NewReader(j)); official.err != nil {
			return
		}
		official.schema, official.err = c.Compile(url + "#/definitions/AirbyteMessage")
	})
	if official.err != nil || official.schema == nil {
		return official.err
	}
	v, err := schemas.Decode(line)
	if err != nil {
		return err
	}
	return official.schema.Validate(v)
}

// TestNextReleaseInput: input of a later protocol release (the synthetic
// one of tools/protocoldiff/testdata/next-release.json) syncs: a message
// type the connector does not know is skipped with one WARN however often it
// comes, and new members of records and catalog streams are ignored.
func TestNextReleaseInput(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := catalogDoc(cstream{name: "a", mode: "append"})
	st := cat["streams"].([]any)[0].(map[string]any)
	st["stream"].(map[string]any)["priority"] = 3
	st["a_later_member"] = map[string]any{"x": []int{1}}
	catPath := e.write("catalog.json", cat)
	in := strings.Join([]string{
		`{"type":"HEARTBEAT","heartbeat":{"emitted_at":1700000000000}}`,
		`{"type":"RECORD","record":{"stream":"a","data":{"n":1},"emitted_at":1700000000000,"source_record_id":"r-1"}}`,
		`{"type":"HEARTBEAT","heartbeat":{"emitted_at":1700000000001}}`,
		streamState("a", "1"),
		`{"type":"RECORD","record":{"stream":"a","data":{"n":2},"emitted_at":1700000000000,"source_record_id":"r-2"},"a_message_member":true}`,
		`{"type":"SOMETHING_ELSE"}`,
		streamState("a", "2"),
	}, "\n") + "\n"
	r := e.run(in, "write", "--config", e.config(nil), "--catalog", catPath)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	if got := len(r.states()); got != 2 {
		t.Fatalf("%d states echoed, want 2", got)
	}
	logs := r.logs()
	if n := strings.Count(logs, `Skipping messages of type "HEARTBEAT" (first on input line 1)`); n != 1 {
		t.Errorf("want one WARN for HEARTBEAT, got %d:\n%s", n, logs)
	}
	if !strings.Contains(logs, `Skipping messages of type "SOMETHING_ELSE" (first on input line 6)`) {
		t.Errorf("no WARN for SOMETHING_ELSE:\n%s", logs)
	}
	evs := e.events("a")
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	for _, ev := range evs {
		if _, ok := ev["source_record_id"]; ok {
			t.Errorf("a member of the record message reached the event: %v", ev)
		}
	}
}

// TestPlatformSamples syncs what a current platform sends a destination
// (../shared/airbyte-protocol/samples, when present): every message type,
// records with meta.changes and file references, states with sourceStats
// and a platform id, a catalog with the latest members. Exit 0, every state
// echoed, every record in the collection the destination_object_name names.
func TestPlatformSamples(t *testing.T) {
	input, err := os.ReadFile(filepath.Join(protocolDir, "samples", "platform_input_v0.18.jsonl"))
	if os.IsNotExist(err) {
		t.Skip("../shared/airbyte-protocol/samples is not beside the project: no platform samples to sync")
	}
	if err != nil {
		t.Fatal(err)
	}
	catDoc, err := os.ReadFile(filepath.Join(protocolDir, "samples", "configured_catalog_v0.18.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, emulator.Options{})
	catPath := filepath.Join(e.dir, "catalog.json")
	if err := os.WriteFile(catPath, catDoc, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run(string(input), "write", "--config", e.config(nil), "--catalog", catPath)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	want := 0
	var records int
	for l := range strings.Lines(string(input)) {
		var m struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case "STATE":
			want++
		case "RECORD":
			records++
		}
	}
	if got := len(r.states()); got != want || want == 0 {
		t.Fatalf("%d states echoed, want %d", got, want)
	}
	if strings.Contains(r.logs(), "Skipping messages of type") {
		t.Errorf("a message type of the release was taken for a later one:\n%s", r.logs())
	}
	// The sample's catalog names the destination object users_obj.
	if evs := e.events("users_obj"); len(evs) != records {
		t.Errorf("%d events in users_obj (the stream's destination_object_name), want %d", len(evs), records)
	}
	if n := len(e.events("users")); n != 0 {
		t.Errorf("%d events in users: the destination_object_name names the collection", n)
	}
	if !strings.Contains(r.logs(), `Stream "public.users" -> collection "users_obj" (the platform's destination_object_name "users_obj")`) {
		t.Errorf("the plan log does not say where the collection's name comes from:\n%s", r.logs())
	}
}

// TestTraceNamesTheNamespace: a failure about a stream of a namespace
// names both in the TRACE's stream_descriptor, as the message does.
func TestTraceNamesTheNamespace(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "users", ns: "public", mode: "append"}))
	in := `{"type":"RECORD","record":{"stream":"users","namespace":"public","data":{"ok":1},"emitted_at":1}}` + "\n" +
		`{"type":"RECORD","record":{"stream":"users","namespace":"public","data":{"$bad":1},"emitted_at":1}}` + "\n"
	r := e.run(in, "write", "--config", e.config(map[string]any{"nonconforming_records": "fail"}), "--catalog", cat)
	if r.code == 0 {
		t.Fatalf("a nonconforming record with fail must end the sync:\n%s", r.stdout)
	}
	sd, _ := r.trace(t)["stream_descriptor"].(map[string]any)
	if sd["name"] != "users" || sd["namespace"] != "public" {
		t.Fatalf("stream_descriptor %v, want users in public", sd)
	}
}
