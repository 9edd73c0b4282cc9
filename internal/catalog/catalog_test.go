package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"destination-keen/internal/config"
	"destination-keen/internal/failure"
)

type stream struct {
	name, ns, mode string
	cursor         []string
	schema         string
	gen, minGen    int
	object         string     // destination_object_name
	syncMode       string     // default incremental
	key, srcKey    [][]string // primary_key, source_defined_primary_key
	syncID         int
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
		if s.srcKey != nil {
			st["source_defined_primary_key"] = s.srcKey
		}
		mode := "incremental"
		if s.syncMode != "" {
			mode = s.syncMode
		}
		cs := map[string]any{"stream": st, "sync_mode": mode, "destination_sync_mode": s.mode}
		if s.key != nil {
			cs["primary_key"] = s.key
		}
		if s.syncID != 0 {
			cs["sync_id"] = s.syncID
		}
		if s.object != "" {
			cs["destination_object_name"] = s.object
		}
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
	), Options{InferTimestamp: true})
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
	if c.Lookup("", "users") == nil || c.Lookup("any_namespace", "users") != nil || c.Lookup("", "nope") != nil {
		t.Fatal("lookup")
	}
}

func TestInferenceOff(t *testing.T) {
	c, err := Compile(doc(stream{name: "s", mode: "append", cursor: []string{"ts"}}), Options{})
	if err != nil || c.Plans[0].TimestampFromCursor || c.Plans[0].Cursor == nil {
		t.Fatalf("inference off must keep the cursor but not read times from it: %+v %v", c.Plans[0], err)
	}
}

func TestNamespaces(t *testing.T) {
	c, err := Compile(doc(stream{name: "users", ns: "a", mode: "append"}, stream{name: "users", ns: "b", mode: "append"}), Options{InferTimestamp: true})
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

// TestLookup: one rule for namespaces, with one stream of a name or many:
// the exact namespace; a record without one takes the only stream of its
// name; a namespace the catalog lacks for that name matches nothing.
func TestLookup(t *testing.T) {
	one, err := Compile(doc(stream{name: "id_and_name", ns: "public", mode: "append"}, stream{name: "plain", mode: "append"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	two, err := Compile(doc(stream{name: "id_and_name", ns: "public", mode: "append"}, stream{name: "id_and_name", ns: "other", mode: "append"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cat   *Catalog
		ns, s string
		want  string // the plan's namespace, or "-" for none
	}{
		{"exact, one", one, "public", "id_and_name", "public"},
		{"no namespace, one of the name", one, "", "id_and_name", "public"},
		{"another namespace, one of the name", one, "other", "id_and_name", "-"},
		{"a namespace for a stream without one", one, "public", "plain", "-"},
		{"exact, two", two, "other", "id_and_name", "other"},
		{"no namespace, two of the name", two, "", "id_and_name", "-"},
		{"a third namespace, two of the name", two, "third", "id_and_name", "-"},
		{"an unknown name", one, "", "nope", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := "-"
			if p := tt.cat.Lookup(tt.ns, tt.s); p != nil {
				got = p.Namespace
			}
			if got != tt.want {
				t.Fatalf("Lookup(%q, %q) found %q, want %q", tt.ns, tt.s, got, tt.want)
			}
		})
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
			[]string{`stream "a": destination sync mode "append_dedup" is not supported`, `stream "b": destination sync mode "soft_delete"`}},
		{"a destination sync mode of a later release", doc(stream{name: "a", mode: "merge_upsert"}),
			[]string{`stream "a": destination sync mode "merge_upsert" is not one this connector knows (append, `, `); use append or overwrite`}},
		{"a sync mode of a later release", doc(stream{name: "a", mode: "append", syncMode: "streaming"}),
			[]string{`stream "a": sync mode "streaming" is not one this connector knows (full_refresh, incremental`}},
		{"empty name", doc(stream{name: "$$$", mode: "append"}), []string{`stream "$$$": no character`}},
		{"truncate collision", doc(stream{name: "my stream", mode: "overwrite"}, stream{name: "my_stream", mode: "append"}),
			[]string{`streams "my stream", "my_stream" all map to collection "my_stream" and one of them truncates it`}},
		{"duplicate", doc(stream{name: "a", mode: "append"}, stream{name: "a", mode: "append"}), []string{`stream "a" appears twice`}},
		// What the connector acts on is still checked, however liberal the reading.
		{"no stream name", []byte(`{"streams":[{"stream":{"json_schema":{}},"sync_mode":"incremental","destination_sync_mode":"append"}]}`),
			[]string{"/streams/0/stream: missing properties: 'name'"}},
		{"no sync modes", []byte(`{"streams":[{"stream":{"name":"a"}}]}`), []string{"/streams/0: missing properties: 'sync_mode', 'destination_sync_mode'"}},
		{"a cursor that is not a path", []byte(`{"streams":[{"stream":{"name":"a"},"sync_mode":"incremental","destination_sync_mode":"append","cursor_field":"updated_at"}]}`),
			[]string{"/streams/0/cursor_field: expected array"}},
		{"a primary key that is not a list of paths", []byte(`{"streams":[{"stream":{"name":"a"},"sync_mode":"incremental","destination_sync_mode":"append","primary_key":["id"]}]}`),
			[]string{"/streams/0/primary_key/0: expected array"}},
		{"supported_sync_modes present but not a list", []byte(`{"streams":[{"stream":{"name":"a","supported_sync_modes":"incremental"},"sync_mode":"incremental","destination_sync_mode":"append"}]}`),
			[]string{"/streams/0/stream/supported_sync_modes: expected array"}},
		{"a destination_object_name with no usable character", doc(stream{name: "a", mode: "append", object: "$$$"}),
			[]string{`stream "a" (destination_object_name "$$$"): no character`}},
		{"destination_object_names that collide", doc(stream{name: "a", mode: "overwrite", object: "events"}, stream{name: "b", mode: "append", object: "events"}),
			[]string{`streams "a", "b" all map to collection "events" and one of them truncates it`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.doc, Options{InferTimestamp: true})
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

func TestTokenRules(t *testing.T) {
	id := [][]string{{"id"}}
	tests := []struct {
		name   string
		s      stream
		policy config.TokenPolicy
		want   string // kind key snapshot sync generation
	}{
		{"incremental with a key and a cursor", stream{mode: "append", key: id, cursor: []string{"updated"}}, config.TokensKeyed, "1 [[id]] false  "},
		{"the source's key", stream{mode: "append", srcKey: [][]string{{"a"}, {"b", "c"}}, cursor: []string{"u"}}, config.TokensKeyed, "1 [[a] [b c]] false  "},
		{"the configured key first", stream{mode: "append", key: id, srcKey: [][]string{{"a"}}, cursor: []string{"u"}}, config.TokensKeyed, "1 [[id]] false  "},
		{"full refresh", stream{mode: "append", key: id, syncMode: "full_refresh", syncID: 42}, config.TokensKeyed, "1 [[id]] true 42 "},
		{"full refresh without a sync_id", stream{mode: "append", key: id, syncMode: "full_refresh"}, config.TokensKeyed, "0 [[id]] true  "},
		{"no cursor", stream{mode: "append", key: id, syncID: 7}, config.TokensKeyed, "1 [[id]] true 7 "},
		{"no key", stream{mode: "append", cursor: []string{"u"}}, config.TokensKeyed, "0 [] false  "},
		{"no key, record", stream{mode: "append", cursor: []string{"u"}}, config.TokensAll, "2 [] false  "},
		{"off", stream{mode: "append", key: id, cursor: []string{"u"}}, config.TokensOff, "0 [[id]] false  "},
		{"a key with an empty path", stream{mode: "append", key: [][]string{{}}, cursor: []string{"u"}}, config.TokensKeyed, "0 [] false  "},
		{"truncating, generation hashed", stream{mode: "overwrite", key: id, syncMode: "full_refresh", syncID: 9, gen: 3, minGen: 3}, config.TokensKeyed, "1 [[id]] true 9 3"},
		{"appending, generation not hashed", stream{mode: "append", key: id, cursor: []string{"u"}, gen: 3, minGen: 0}, config.TokensKeyed, "1 [[id]] false  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.name = "s"
			c, err := Compile(doc(tt.s), Options{Tokens: tt.policy})
			if err != nil {
				t.Fatal(err)
			}
			r := c.Plans[0].Token
			if got := fmt.Sprintf("%d %v %v %s %s", r.Kind, r.Key, r.Snapshot, r.SyncID, r.Generation); got != tt.want {
				t.Fatalf("rule %q (%s), want %q", got, r.Why, tt.want)
			}
			if r.Why == "" {
				t.Fatal("no reason for the log")
			}
		})
	}
}

// TestLiberalReading: what the sync never reads may hold values of a later
// release, and whole numbers may be written as floats, as JSON Schema allows.
func TestLiberalReading(t *testing.T) {
	tests := []struct {
		name, doc string
		check     func(*testing.T, *Catalog)
	}{
		{"an unknown supported sync mode", `{"streams":[{"stream":{"name":"a","json_schema":{},"supported_sync_modes":["incremental","streaming"]},"sync_mode":"incremental","destination_sync_mode":"append"}]}`,
			func(t *testing.T, c *Catalog) {
				if len(c.Plans) != 1 || c.Plans[0].Truncate {
					t.Errorf("plans %+v", c.Plans)
				}
			}},
		{"unknown members", `{"streams":[{"stream":{"name":"a","json_schema":{},"supported_sync_modes":["incremental"],"is_file_based":false,"next_release_member":{"x":1}},"sync_mode":"incremental","destination_sync_mode":"append","include_files":false,"destination_object_name":"a","another":[1]}],"catalog_member":true}`,
			func(t *testing.T, c *Catalog) {
				if len(c.Plans) != 1 {
					t.Errorf("plans %+v", c.Plans)
				}
			}},
		// Airbyte's own acceptance-test catalogs: a name and a schema, nothing more.
		{"a stream without supported_sync_modes", `{"streams":[{"stream":{"name":"exchange_rate","json_schema":{"properties":{"date":{"type":"string","format":"date-time"}}}},"sync_mode":"full_refresh","destination_sync_mode":"overwrite","cursor_field":["date"]}]}`,
			func(t *testing.T, c *Catalog) {
				if p := c.Plans[0]; !p.Truncate || p.CursorKind != CursorDate {
					t.Errorf("plan %+v: an overwrite with a date-time cursor expected", p)
				}
			}},
		{"a stream without a json_schema", `{"streams":[{"stream":{"name":"a"},"sync_mode":"incremental","destination_sync_mode":"append","cursor_field":["u"]}]}`,
			func(t *testing.T, c *Catalog) {
				if p := c.Plans[0]; p.CursorKind != CursorUnknown || p.Collection != "a" {
					t.Errorf("plan %+v", p)
				}
			}},
		{"an empty supported_sync_modes", `{"streams":[{"stream":{"name":"a","json_schema":{},"supported_sync_modes":[]},"sync_mode":"incremental","destination_sync_mode":"append"}]}`,
			func(t *testing.T, c *Catalog) {
				if len(c.Plans) != 1 {
					t.Errorf("plans %+v", c.Plans)
				}
			}},
		{"generation ids written as floats", `{"streams":[{"stream":{"name":"a","json_schema":{},"supported_sync_modes":["full_refresh"]},"sync_mode":"full_refresh","destination_sync_mode":"append","generation_id":3.0,"minimum_generation_id":3e0,"sync_id":1.7e1}]}`,
			func(t *testing.T, c *Catalog) {
				if p := c.Plans[0]; !p.Truncate || p.Generation != "3" {
					t.Errorf("a refresh of generation 3 expected, got truncate=%t generation %q", p.Truncate, p.Generation)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile([]byte(tt.doc), Options{InferTimestamp: true})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
	t.Run("a generation id with a fraction", func(t *testing.T) {
		_, err := Compile([]byte(`{"streams":[{"stream":{"name":"a","json_schema":{},"supported_sync_modes":["full_refresh"]},"sync_mode":"full_refresh","destination_sync_mode":"append","generation_id":3.5}]}`), Options{})
		if f := failure.As(err); err == nil || f.Kind != failure.Config || !strings.Contains(f.Message, "generation_id") {
			t.Fatalf("want a config_error naming generation_id, got %v", err)
		}
	})
}

// TestDestinationObjectName: the name the platform gives the destination
// object names the collection, after Keen's and Kafka's rules; without it
// the stream's name does.
func TestDestinationObjectName(t *testing.T) {
	tests := []struct {
		s                  stream
		collection, object string
	}{
		{stream{name: "users", mode: "append", object: "users_obj"}, "users_obj", "users_obj"},
		{stream{name: "users", mode: "append", object: "Crm Users (prod)"}, "Crm_Users_prod", "Crm Users (prod)"},
		{stream{name: "users", mode: "append"}, "users", ""},
	}
	for _, tt := range tests {
		t.Run(tt.collection, func(t *testing.T) {
			c, err := Compile(doc(tt.s), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if p := c.Plans[0]; p.Collection != tt.collection || p.ObjectName != tt.object || p.Stream != "users" {
				t.Fatalf("collection %q object %q stream %q, want %q %q users", p.Collection, p.ObjectName, p.Stream, tt.collection, tt.object)
			}
		})
	}
}

// TestTruncation: which streams replace their collection's events. An
// append of generation 0 with minimum 0 (a platform's first generation of
// a stream, or one that sends zeros) never does.
func TestTruncation(t *testing.T) {
	tests := []struct {
		name     string
		extra    string // members of the configured stream
		mode     string
		truncate bool
		gen      string
	}{
		{"append without generations", ``, "append", false, ""},
		{"append of generation 0, minimum 0", `,"generation_id":0,"minimum_generation_id":0`, "append", false, ""},
		{"append of generation 0 with a sync_id", `,"generation_id":0,"minimum_generation_id":0,"sync_id":8`, "append", false, ""},
		{"refresh and keep (generation above the minimum)", `,"generation_id":4,"minimum_generation_id":1`, "append", false, ""},
		{"refresh and keep from 0", `,"generation_id":1,"minimum_generation_id":0`, "append", false, ""},
		{"refresh and remove (generation = minimum > 0)", `,"generation_id":3,"minimum_generation_id":3`, "append", true, "3"},
		{"a minimum above the generation", `,"generation_id":2,"minimum_generation_id":3`, "append", false, ""},
		{"overwrite of generation 0", `,"generation_id":0,"minimum_generation_id":0,"sync_id":8`, "overwrite", true, "0"},
		{"overwrite without a generation_id", `,"sync_id":8`, "overwrite", true, "8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"streams":[{"stream":{"name":"a"},"sync_mode":"incremental","destination_sync_mode":"` + tt.mode + `"` + tt.extra + `}]}`
			c, err := Compile([]byte(doc), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if p := c.Plans[0]; p.Truncate != tt.truncate || p.Generation != tt.gen {
				t.Fatalf("truncate %v generation %q, want %v %q", p.Truncate, p.Generation, tt.truncate, tt.gen)
			}
		})
	}
}
