package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"destination-keen/internal/failure"
)

type stream struct {
	name, ns, mode string
	cursor         []string
	schema         string
	gen, minGen    int
}

func doc(streams ...stream) []byte {
	var out []map[string]any
	for _, s := range streams {
		st := map[string]any{"name": s.name, "json_schema": json.RawMessage(`{"type":"object"}`), "supported_sync_modes": []string{"full_refresh", "incremental"}}
		if s.schema != "" {
			st["json_schema"] = json.RawMessage(s.schema)
		}
		if s.ns != "" {
			st["namespace"] = s.ns
		}
		cs := map[string]any{"stream": st, "sync_mode": "incremental", "destination_sync_mode": s.mode}
		if s.cursor != nil {
			cs["cursor_field"] = s.cursor
		}
		if s.gen != 0 || s.minGen != 0 {
			cs["generation_id"], cs["minimum_generation_id"] = s.gen, s.minGen
		}
		out = append(out, cs)
	}
	b, _ := json.Marshal(map[string]any{"streams": out})
	return b
}

func TestCompilePlans(t *testing.T) {
	c, err := Compile(doc(
		stream{name: "Ünïcödé Stream!", mode: "append", cursor: []string{"updated_at"},
			schema: `{"properties":{"updated_at":{"type":["null","string"],"format":"date-time"}}}`},
		stream{name: "orders.v2", mode: "overwrite"},
		stream{name: "users", mode: "append", gen: 4, minGen: 4, cursor: []string{"meta", "updated"},
			schema: `{"properties":{"meta":{"properties":{"updated":{"type":["null","integer"]}}}}}`},
		stream{name: "events", mode: "append", gen: 4, minGen: 1, cursor: []string{"ts"}},
	), true)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, p := range c.Plans {
		got = append(got, fmt.Sprintf("%s->%s truncate=%v (%s) cursor=%v %s", p.Name(), p.Collection, p.Truncate, p.Reason, p.Cursor, p.CursorKind))
	}
	want := []string{
		"Ünïcödé Stream!->Unicode_Stream truncate=false (append) cursor=[updated_at] date-time string",
		"orders.v2->orders.v2 truncate=true (overwrite) cursor=[] decided per value",
		"users->users truncate=true (refresh (generation 4)) cursor=[meta updated] epoch number",
		"events->events truncate=false (append) cursor=[ts] decided per value",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plans:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c.Lookup("", "users") == nil || c.Lookup("any_namespace", "users") == nil || c.Lookup("", "nope") != nil {
		t.Fatal("lookup")
	}
}

func TestInferenceOff(t *testing.T) {
	c, err := Compile(doc(stream{name: "s", mode: "append", cursor: []string{"ts"}}), false)
	if err != nil || c.Plans[0].Cursor != nil {
		t.Fatalf("inference off must drop the cursor: %v %v", c.Plans[0].Cursor, err)
	}
}

func TestNamespaces(t *testing.T) {
	c, err := Compile(doc(stream{name: "users", ns: "a", mode: "append"}, stream{name: "users", ns: "b", mode: "append"}), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `"a.users", "b.users"`) {
		t.Fatalf("warnings %q", c.Warnings)
	}
	if c.Lookup("a", "users") == c.Lookup("b", "users") || c.Lookup("c", "users") != nil {
		t.Fatal("namespaced lookup")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  []byte
		want []string
	}{
		{"not json", []byte(`{"streams":`), []string{"The catalog is not valid JSON"}},
		{"wrong shape", []byte(`{"streams":[{"stream":{}}]}`), []string{"/streams/0: missing properties", "/streams/0/stream: missing properties"}},
		{"unsupported modes", doc(stream{name: "a", mode: "append_dedup"}, stream{name: "b", mode: "soft_delete"}),
			[]string{`stream "a": destination sync mode append_dedup is not supported`, `stream "b": destination sync mode soft_delete`}},
		{"empty name", doc(stream{name: "$$$", mode: "append"}), []string{`stream "$$$": no character`}},
		{"truncate collision", doc(stream{name: "my stream", mode: "overwrite"}, stream{name: "my_stream", mode: "append"}),
			[]string{`streams "my stream", "my_stream" all map to collection "my_stream" and one of them truncates it`}},
		{"duplicate", doc(stream{name: "a", mode: "append"}, stream{name: "a", mode: "append"}), []string{`stream "a" appears twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.doc, true)
			f := failure.As(err)
			if err == nil || f.Kind != failure.Config {
				t.Fatalf("want config_error, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(f.Message, w) {
					t.Errorf("message %q lacks %q", f.Message, w)
				}
			}
		})
	}
}
