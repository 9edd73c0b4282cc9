package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"destination-keen/internal/failure"
)

const key = "SECRET-key-7f3a9c"

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"project_id":"abc123","api_key":"` + key + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		ProjectID:       "abc123",
		APIKey:          key,
		InferTimestamp:  true,
		Brokers:         []string{"b1.kafka-in.keen.io:9092", "b2.kafka-in.keen.io:9092", "b3.kafka-in.keen.io:9092"},
		APIURL:          "https://api.keen.io/3.0",
		Compression:     "lz4",
		DeliveryTimeout: 300 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %#v\nwant %#v", c, want)
	}
}

func TestParseOverrides(t *testing.T) {
	c, err := Parse([]byte(`{"project_id":"p1","api_key":"k","infer_timestamp":false,
		"kafka_bootstrap_servers":" 127.0.0.1:9092 ,localhost:9093","api_url":"https://127.0.0.1:8443/3.0/",
		"compression":"zstd","oversized_records":"skip","transport":"https","refused_records":"fail"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != HTTPS || !c.FailRefused || !strings.Contains(c.String(), " transport=https ") || !strings.HasSuffix(c.String(), " refused_records=fail") {
		t.Errorf("transport %v, fail refused %v: %s", c.Transport, c.FailRefused, c)
	}
	if c.InferTimestamp {
		t.Error("infer_timestamp false was not kept")
	}
	if want := []string{"127.0.0.1:9092", "localhost:9093"}; !reflect.DeepEqual(c.Brokers, want) {
		t.Errorf("brokers %q, want %q", c.Brokers, want)
	}
	if c.Compression != "zstd" || !c.SkipOversized {
		t.Errorf("compression %q skip %v", c.Compression, c.SkipOversized)
	}
	if c.APIURL != "https://127.0.0.1:8443/3.0" {
		t.Errorf("api_url %q keeps its trailing slash", c.APIURL)
	}
}

func TestParseNonconformingRecords(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  Policy
	}{{"", Fix}, {`"fix"`, Fix}, {`"skip"`, Skip}, {`"fail"`, Fail}} {
		t.Run(tt.want.String()+tt.value, func(t *testing.T) {
			doc := `{"project_id":"p1","api_key":"k"`
			if tt.value != "" {
				doc += `,"nonconforming_records":` + tt.value
			}
			c, err := Parse([]byte(doc + "}"))
			if err != nil {
				t.Fatal(err)
			}
			if c.Nonconforming != tt.want {
				t.Fatalf("got %v, want %v", c.Nonconforming, tt.want)
			}
		})
	}
	if _, err := Parse([]byte(`{"project_id":"p1","api_key":"k","nonconforming_records":"drop"}`)); err == nil || !strings.Contains(err.Error(), "nonconforming_records") {
		t.Fatalf("an unknown policy: %v", err)
	}
}

// TestParseUniquenessToken: the values of this version, and those of
// earlier versions mapped to what they mean now, with a warning that names
// the new value; a saved config keeps working.
func TestParseUniquenessToken(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  TokenPolicy
		warn  string
	}{
		{"", TokensKeyed, ""},
		{`"keyed_streams"`, TokensKeyed, ""},
		{`"all_streams"`, TokensAll, ""},
		{`"off"`, TokensOff, ""},
		{`"primary_key"`, TokensKeyed, `uniqueness_token: "primary_key" is the value of an earlier version and now means "keyed_streams"`},
		{`"record"`, TokensAll, `uniqueness_token: "record" is the value of an earlier version and now means "all_streams"`},
	} {
		t.Run(tt.want.String()+tt.value, func(t *testing.T) {
			doc := `{"project_id":"p1","api_key":"k","delivery_timeout_seconds":3600`
			if tt.value != "" {
				doc += `,"uniqueness_token":` + tt.value
			}
			c, err := Parse([]byte(doc + "}"))
			if err != nil {
				t.Fatal(err)
			}
			if c.Tokens != tt.want || c.DeliveryTimeout != time.Hour {
				t.Fatalf("got %v and %s, want %v and the other fields as given", c.Tokens, c.DeliveryTimeout, tt.want)
			}
			if got := strings.Join(c.Warnings, "\n"); !strings.Contains(got, tt.warn) || (tt.warn == "") != (got == "") {
				t.Fatalf("warnings %q, want %q", got, tt.warn)
			}
		})
	}
	if _, err := Parse([]byte(`{"project_id":"p1","api_key":"k","uniqueness_token":"key"}`)); err == nil || !strings.Contains(err.Error(), "uniqueness_token") {
		t.Fatalf("an unknown value: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // the whole message: every problem, sorted
	}{
		{"not json", `{"project_id": ` + key, "The config is not valid JSON"},
		{"empty", ``, "The config is not valid JSON"},
		{"not an object", `["` + key + `"]`, "The config is invalid: config: expected object, but got array"},
		{"both missing", `{}`, "The config is invalid: project_id: is required; api_key: is required"},
		{"key wrong type", `{"project_id":"p","api_key":7}`, "The config is invalid: api_key: expected string, but got number"},
		{"many at once", `{"project_id":"a b","api_key":"` + key + `","infer_timestamp":"` + key + `","api_url":"http://` + key + `"}`,
			"The config is invalid: api_url: has the wrong form: give an https:// URL (TLS is required); " +
				"infer_timestamp: expected boolean, but got string; " +
				"project_id: has the wrong form: copy the Project ID from the Access tab of your Keen project (letters and digits only)"},
		{"bad enum", `{"project_id":"p","api_key":"k","compression":"brotli","oversized_records":"drop"}`,
			"The config is invalid: compression: value must be one of \"none\", \"gzip\", \"snappy\", \"lz4\", \"zstd\"; oversized_records: value must be one of \"fail\", \"skip\""},
		{"bad brokers", `{"project_id":"p","api_key":"k","kafka_bootstrap_servers":"` + key + `"}`,
			"The config is invalid: kafka_bootstrap_servers: has the wrong form: give a comma-separated list of host:port"},
		// What the patterns let through, each a config_error naming the field.
		{"a port out of range", `{"project_id":"p","api_key":"k","kafka_bootstrap_servers":"127.0.0.1:9092,127.0.0.1:99999"}`,
			"The config is invalid: kafka_bootstrap_servers: address 2 of 2 has a port out of range (1-65535)"},
		{"port 0", `{"project_id":"p","api_key":"k","kafka_bootstrap_servers":"b1:0"}`,
			"The config is invalid: kafka_bootstrap_servers: address 1 of 1 has a port out of range (1-65535)"},
		{"IPv6 without brackets", `{"project_id":"p","api_key":"k","kafka_bootstrap_servers":"::1:9092"}`,
			"The config is invalid: kafka_bootstrap_servers: address 1 of 1 is not host:port (an IPv6 address goes in brackets: [::1]:9092)"},
		{"a scheme", `{"project_id":"p","api_key":"k","kafka_bootstrap_servers":"https://b1.kafka-in.keen.io:9092"}`,
			"The config is invalid: kafka_bootstrap_servers: address 1 of 1 has a scheme; give host:port only (the connection is always TLS)"},
		{"semicolons", `{"project_id":"p","api_key":"k","kafka_bootstrap_servers":"a:9092;b:9093"}`,
			"The config is invalid: kafka_bootstrap_servers: address 1 of 1 holds a ';', '|' or a space: addresses are separated by commas"},
		{"a host name with a slash", `{"project_id":"p","api_key":"k","kafka_bootstrap_servers":"b1/x:9092"}`,
			"The config is invalid: kafka_bootstrap_servers: address 1 of 1 has a host name with characters no host name holds"},
		{"an API port out of range", `{"project_id":"p","api_key":"k","api_url":"https://127.0.0.1:99999/3.0"}`,
			"The config is invalid: api_url: has a port out of range (1-65535)"},
		{"an API URL without a host", `{"project_id":"p","api_key":"k","api_url":"https:///3.0"}`,
			"The config is invalid: api_url: has no host"},
		{"a key with a line break", `{"project_id":"p","api_key":"` + key + `\n"}`,
			"The config is invalid: api_key: holds a line break or another control character, which an HTTP header cannot carry; copy the key again from the Access tab"},
		{"every problem at once", `{"project_id":"p","api_key":"` + key + `\u0000","api_url":"https://h:0","kafka_bootstrap_servers":"h:1,h:70000"}`,
			"The config is invalid: api_key: holds a line break or another control character, which an HTTP header cannot carry; copy the key again from the Access tab; api_url: has a port out of range (1-65535); kafka_bootstrap_servers: address 2 of 2 has a port out of range (1-65535)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			f := failure.As(err)
			if err == nil || f.Kind != failure.Config {
				t.Fatalf("want a config_error, got %v", err)
			}
			if !strings.HasPrefix(f.Message, tt.want) {
				t.Fatalf("message\n got %q\nwant %q", f.Message, tt.want)
			}
			if strings.Contains(err.Error(), key) {
				t.Fatalf("the error quotes the key: %q", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(context.Background(), filepath.Join(t.TempDir(), "nope.json"))
	if f := failure.As(err); f.Kind != failure.Config || !strings.Contains(f.Message, "Cannot read the config file") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(`{"project_id":"p","api_key":"k"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(context.Background(), p)
	if err != nil || c.ProjectID != "p" {
		t.Fatalf("Load = %v, %v", c, err)
	}
}

func TestSecretNeverFormats(t *testing.T) {
	c := &Config{ProjectID: "p", APIKey: key}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "key", c.APIKey, "config", c)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "key", c.APIKey, "config", c)
	if strings.Count(logged.String(), "[redacted]") < 3 {
		t.Errorf("slog did not redact: %s", logged.String())
	}
	for _, s := range []string{fmt.Sprint(c.APIKey), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprintf("%#v", *c), string(b), logged.String()} {
		if strings.Contains(s, key) {
			t.Errorf("secret leaked: %s", s)
		}
	}
	if c.APIKey.Reveal() != key {
		t.Error("Reveal must return the key")
	}
}

func TestUnknownFields(t *testing.T) {
	c, err := Parse([]byte(`{"project_id":"p1","api_key":"k","infer_timestmap":false,"compresion":"zstd","airbyte_internal":1}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`"compresion" is not an option of this connector; did you mean "compression"? It is ignored, and compression takes its default unless set`,
		`"infer_timestmap" is not an option of this connector; did you mean "infer_timestamp"? It is ignored, and infer_timestamp takes its default unless set`,
		`"airbyte_internal" is not an option of this connector; it is ignored`,
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Fatalf("warnings:\n%q\nwant\n%q", c.Warnings, want)
	}
	if !c.InferTimestamp || c.Compression != "lz4" {
		t.Fatal("the typo'd fields must not be taken")
	}
	_, err = Parse([]byte(`{"projectid":"p1","api_key":"` + key + `"}`))
	if err == nil || !strings.Contains(err.Error(), `project_id: is required (the config has "projectid": did you mean project_id?)`) {
		t.Fatalf("a missing field with a near-miss: %v", err)
	}
	if strings.Contains(fmt.Sprint(err, c.Warnings), key) {
		t.Fatal("a value was quoted")
	}
}

// TestNearest: a field is taken for a typo of an option at an edit distance
// of 1, 2 or 3, and only when the distance is at most a third of the
// option's length; 4 is never a typo.
func TestNearest(t *testing.T) {
	tests := []struct{ name, want string }{
		{"compression", "compression"},        // 0: an option (never asked, but the nearest is itself)
		{"compresion", "compression"},         // 1
		{"comprssin", "compression"},          // 2
		{"cmprssin", "compression"},           // 3, within a third of 11
		{"cmprssi", ""},                       // 4
		{"api_ky", "api_key"},                 // 1
		{"ap_ky", "api_key"},                  // 2, within a third of 7
		{"a_ky", ""},                          // 3, over a third of 7
		{"kafka_producer", "kafka_producers"}, // 1
		{"delivery_timeout", ""},              // 8 from the option: none
		{"xyz", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nearest(tt.name); got != tt.want {
				t.Fatalf("nearest(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

// TestParseAddresses: well-formed addresses and URLs pass, written in any
// accepted way; the API URL's scheme may be in capitals.
func TestParseAddresses(t *testing.T) {
	c, err := Parse([]byte(`{"project_id":"p","api_key":"k","api_url":"HTTPS://API.example:8443/3.0/","kafka_bootstrap_servers":"[::1]:9092, b1.kafka-in.keen.io:9092 ,10.0.0.1:1,my_host.internal.:65535"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIURL != "https://API.example:8443/3.0" {
		t.Errorf("api_url %q", c.APIURL)
	}
	if want := []string{"[::1]:9092", "b1.kafka-in.keen.io:9092", "10.0.0.1:1", "my_host.internal.:65535"}; !reflect.DeepEqual(c.Brokers, want) {
		t.Errorf("brokers %q, want %q", c.Brokers, want)
	}
}

// TestUnknownFieldsCapped: thousands of fields that are not options give 20
// warnings and one that counts the rest, not a line each.
func TestUnknownFieldsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"project_id":"p1","api_key":"k","compresion":"zstd"`)
	for i := range 10000 {
		fmt.Fprintf(&b, `,"zz_field_%05d":1`, i)
	}
	b.WriteString("}")
	c, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 21 || c.Warnings[20] != "and 9981 more fields that are not options of this connector are ignored" {
		t.Fatalf("%d warnings, the last %q", len(c.Warnings), c.Warnings[len(c.Warnings)-1])
	}
	if !strings.Contains(c.Warnings[0], `did you mean "compression"`) {
		t.Fatalf("the likely typo is not the first warning: %q", c.Warnings[0])
	}
}

// FuzzParse: whatever the config file holds, Parse ends in a config or a
// config_error (a system_error would mean the schema and the generated type
// drifted apart), never panics, and never quotes the API key, in its errors,
// its warnings or the config's description.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"project_id":"abc123","api_key":"` + key + `"}`,
		`{"project_id":"p","api_key":"` + key + `","kafka_bootstrap_servers":"::1:9092;a:1","api_url":"HTTPS://h:99999/3.0","uniqueness_token":"record","kafka_producers":3.0}`,
		`{"project_id":"p","api_key":"` + key + `\n","apikey":"` + key + `","oversized_records":"` + key + `"}`,
		`{"project_id":1}`, `[]`, `{"project_id":"p","api_key":"k","delivery_timeout_seconds":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := Parse(doc)
		var secret string
		var m map[string]any
		if json.Unmarshal(doc, &m) == nil {
			if s, ok := m["api_key"].(string); ok && len(s) >= 8 {
				secret = s
			}
		}
		leaks := func(s string) bool { return secret != "" && strings.Contains(s, secret) }
		if err != nil {
			var fe *failure.Error
			if !errors.As(err, &fe) || fe.Kind != failure.Config {
				t.Fatalf("not a config_error: %v", err)
			}
			if leaks(fe.Message) || leaks(err.Error()) {
				t.Fatalf("the key is in the error: %v", err)
			}
			return
		}
		if leaks(c.String()) || leaks(strings.Join(c.Warnings, "\n")) || leaks(fmt.Sprintf("%v %+v", c, c)) {
			t.Fatalf("the key is in the config's description or warnings")
		}
	})
}

// TestParseWholeNumbers: a whole number written as a float is an integer,
// as JSON Schema counts it, and a field that is not an option may hold a
// number no float64 holds; both were once system_errors.
func TestParseWholeNumbers(t *testing.T) {
	c, err := Parse([]byte(`{"project_id":"p","api_key":"` + key + `","kafka_producers":3.0,"delivery_timeout_seconds":6e1,"note":1e700}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Producers != 3 || c.DeliveryTimeout != time.Minute || len(c.Warnings) != 1 {
		t.Fatalf("producers %d, timeout %v, warnings %q", c.Producers, c.DeliveryTimeout, c.Warnings)
	}
	if _, err := Parse([]byte(`{"project_id":"p","api_key":"` + key + `","kafka_producers":3.5}`)); err == nil || !strings.Contains(err.Error(), "kafka_producers") {
		t.Fatalf("3.5 producers: %v", err)
	}
}
