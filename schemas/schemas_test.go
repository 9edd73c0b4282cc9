package schemas_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"destination-keen/gen/config"
	"destination-keen/gen/protocol"
	"destination-keen/schemas"
)

// decoders turn a valid fixture into the generated type for its schema.
var decoders = map[string]func([]byte) (any, error){
	schemas.AirbyteMessage: func(b []byte) (any, error) {
		var m protocol.AirbyteMessage
		return &m, json.Unmarshal(b, &m)
	},
	"ConfiguredAirbyteCatalog": func(b []byte) (any, error) {
		var c protocol.ConfiguredAirbyteCatalog
		return &c, json.Unmarshal(b, &c)
	},
	schemas.Config: func(b []byte) (any, error) {
		var c config.Config
		return &c, json.Unmarshal(b, &c)
	},
}

func fixtures(t *testing.T, kind, schema string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", kind, schema, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s fixtures for %s (%v)", kind, schema, err)
	}
	return files
}

func TestValidFixtures(t *testing.T) {
	for schema, decode := range decoders {
		for _, f := range fixtures(t, "valid", schema) {
			t.Run(schema+"/"+filepath.Base(f), func(t *testing.T) {
				doc, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := schemas.Validate(schema, doc); err != nil {
					t.Fatalf("valid fixture rejected: %v", err)
				}
				v, err := decode(doc)
				if err != nil {
					t.Fatalf("generated type rejects a valid fixture: %v", err)
				}
				// What the generated type writes back must still be valid.
				out, err := json.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				if err := schemas.Validate(schema, out); err != nil {
					t.Fatalf("re-encoded fixture is invalid: %v\n%s", err, out)
				}
			})
		}
	}
}

func TestInvalidFixtures(t *testing.T) {
	for schema := range decoders {
		for _, f := range fixtures(t, "invalid", schema) {
			t.Run(schema+"/"+filepath.Base(f), func(t *testing.T) {
				doc, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				wantB, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".want")
				if err != nil {
					t.Fatalf("every invalid fixture needs a .want sidecar: %v", err)
				}
				want := strings.TrimSpace(string(wantB))
				err = schemas.Validate(schema, doc)
				if err == nil {
					t.Fatal("invalid fixture accepted")
				}
				var got []string
				for _, p := range schemas.Problems(err) {
					got = append(got, p.String())
					if strings.Contains(p.String(), want) {
						return
					}
				}
				t.Fatalf("rejected for another reason:\nwant %q\ngot  %q", want, got)
			})
		}
	}
}

// TestFixtureCoverage keeps the fixture folder honest: every message type and
// every trace type has at least one valid and one invalid example.
func TestFixtureCoverage(t *testing.T) {
	var envelope struct {
		Type  string `json:"type"`
		Trace struct {
			Type string `json:"type"`
		} `json:"trace"`
	}
	want := map[string]bool{}
	for _, mt := range []string{"RECORD", "STATE", "LOG", "SPEC", "CONNECTION_STATUS", "CATALOG", "TRACE", "CONTROL", "DESTINATION_CATALOG"} {
		want[mt] = true
	}
	for _, tt := range []string{"ERROR", "ESTIMATE", "STREAM_STATUS", "ANALYTICS"} {
		want["TRACE/"+tt] = true
	}
	for _, kind := range []string{"valid", "invalid"} {
		seen := map[string]bool{}
		for _, f := range fixtures(t, kind, schemas.AirbyteMessage) {
			doc, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			envelope.Type, envelope.Trace.Type = "", ""
			if json.Unmarshal(doc, &envelope) != nil {
				continue
			}
			seen[envelope.Type] = true
			if envelope.Trace.Type != "" {
				seen["TRACE/"+envelope.Trace.Type] = true
			}
		}
		for k := range want {
			if !seen[k] {
				t.Errorf("no %s fixture for %s", kind, k)
			}
		}
	}
}

func TestDecodeRejectsTrailingData(t *testing.T) {
	for name, doc := range map[string]string{
		"garbage":       `{"a":1} x`,
		"second value":  `{"a":1}{"b":2}`,
		"closing brace": `{"a":1}}`,
		"truncated":     `{"a":`,
		"empty":         ``,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := schemas.Decode([]byte(doc))
			var se *schemas.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("want *SyntaxError, got %v", err)
			}
		})
	}
	if _, err := schemas.Decode([]byte(" {\"a\": 18446744073709551615} \n")); err != nil {
		t.Fatalf("trailing white space must be accepted: %v", err)
	}
}

func TestEveryPropertyOfTheConfigIsDocumented(t *testing.T) {
	var s struct {
		Properties map[string]map[string]any `json:"properties"`
		Required   []string                  `json:"required"`
	}
	if err := json.Unmarshal(schemas.Raw(schemas.ConfigFile), &s); err != nil {
		t.Fatal(err)
	}
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	orders := map[float64]string{}
	for name, p := range s.Properties {
		for _, k := range []string{"title", "description", "order"} {
			if _, ok := p[k]; !ok {
				t.Errorf("%s has no %s", name, k)
			}
		}
		if o, ok := p["order"].(float64); ok {
			if other, dup := orders[o]; dup {
				t.Errorf("%s and %s share order %v", name, other, o)
			}
			orders[o] = name
		}
		if _, ok := p["default"]; !ok && !required[name] {
			t.Errorf("optional %s has no default", name)
		}
	}
}

// TestParseInteger: whole numbers as JSON Schema counts them, and nothing
// else; Integer decodes them and encodes digits.
func TestParseInteger(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"3", 3, true}, {"-3", -3, true}, {"3.0", 3, true}, {"3e0", 3, true}, {"1.7e12", 1700000000000, true},
		{"30e-1", 3, true}, {"9223372036854775807", 9223372036854775807, true},
		{"3.5", 0, false}, {"9223372036854775808", 0, false}, {"1e31", 0, false}, {`"3"`, 0, false}, {"", 0, false}, {"true", 0, false},
	} {
		got, ok := schemas.ParseInteger([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseInteger(%s) = %d, %t; want %d, %t", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	var n schemas.Integer
	if err := json.Unmarshal([]byte("4.0"), &n); err != nil || n != 4 {
		t.Fatalf("4.0 decodes to %d, %v", n, err)
	}
	if err := json.Unmarshal([]byte("4.5"), &n); err == nil {
		t.Fatal("4.5 decoded")
	}
	if b, err := json.Marshal(schemas.Integer(4)); err != nil || string(b) != "4" {
		t.Fatalf("encodes as %s, %v", b, err)
	}
}
