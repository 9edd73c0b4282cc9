package connector

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/schemas"
)

var update = flag.Bool("update", false, "rewrite golden files")

const key = "SECRET-key-7f3a9c"

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines validates every line of out as an AirbyteMessage and returns them.
func lines(t *testing.T, out []byte) []string {
	t.Helper()
	var ls []string
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSuffix(l, "\n")
		if err := schemas.Validate(schemas.AirbyteMessage, []byte(l)); err != nil {
			t.Fatalf("stdout line is not a valid Airbyte message: %v\n%s", err, l)
		}
		ls = append(ls, l)
	}
	return ls
}

func TestSpecGolden(t *testing.T) {
	var out bytes.Buffer
	if err := RunSpec(airbyte.NewEmitter(&out)); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, out.Bytes()); len(got) != 1 {
		t.Fatalf("spec printed %d lines, want 1", len(got))
	}
	golden := filepath.Join("testdata", "spec.golden.json")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("spec differs from %s (run go test -update after a deliberate change)\n got %s\nwant %s", golden, out.Bytes(), want)
	}
	for _, s := range []string{`"supportsIncremental":true`,
		`"supported_destination_sync_modes":["overwrite","append"]`, `"airbyte_secret":true`, `"documentationUrl":"https://docs.airbyte.com/integrations/destinations/keen"`} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("spec lacks %s", s)
		}
	}
	// Normalization and DBT default to false in the protocol; the connector's
	// own validator's address stays its own.
	for _, s := range []string{`"supportsNormalization":true`, `"supportsDBT":true`, `"$id"`} {
		if strings.Contains(out.String(), s) {
			t.Errorf("spec has %s", s)
		}
	}
}

func TestCheckOffline(t *testing.T) {
	tests := []struct {
		name   string
		config string
		probes []Probe
		want   string
	}{
		{"missing file", "", nil, `"status":"FAILED"`},
		{"malformed", `{"project_id":"p","api_key":"` + key, nil, `The config is not valid JSON`},
		{"missing key", `{"project_id":"p"}`, nil, `api_key: is required`},
		{"mistyped", `{"project_id":"p","api_key":"` + key + `","infer_timestamp":"` + key + `"}`, nil, `infer_timestamp: expected boolean, but got string`},
		{"valid, no probes", `{"project_id":"p","api_key":"` + key + `"}`, nil, `"status":"SUCCEEDED"`},
		{"probe fails", `{"project_id":"p","api_key":"` + key + `"}`, []Probe{func(_ context.Context, c *config.Config, _ *slog.Logger) error {
			return failure.Configf(errors.New("server said: bad password "+c.APIKey.Reveal()), "Keen rejected the API key")
		}}, `Keen rejected the API key (server said: bad password [redacted])`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.json")
			if tt.config != "" {
				path = writeFile(t, tt.config)
			}
			var out bytes.Buffer
			if err := RunCheck(context.Background(), airbyte.NewEmitter(&out), path, tt.probes...); err != nil {
				t.Fatal(err)
			}
			ls := lines(t, out.Bytes())
			if len(ls) != 1 || !strings.Contains(ls[0], `"type":"CONNECTION_STATUS"`) {
				t.Fatalf("want one CONNECTION_STATUS, got %q", ls)
			}
			if !strings.Contains(ls[0], tt.want) {
				t.Fatalf("got %s, want it to contain %s", ls[0], tt.want)
			}
			if strings.Contains(out.String(), key) {
				t.Fatalf("check printed the key: %s", out.String())
			}
		})
	}
}

func TestTraceRedactsKey(t *testing.T) {
	var out bytes.Buffer
	em := airbyte.NewEmitter(&out)
	em.SetClock(func() time.Time { return time.UnixMilli(1700000000000) })
	em.Redact(key)
	if err := em.TraceError(failure.Transientf(errors.New("dial: "+key), "Brokers unreachable")); err != nil {
		t.Fatal(err)
	}
	ls := lines(t, out.Bytes())
	want := `{"trace":{"emitted_at":1700000000000,"error":{"failure_type":"transient_error","internal_message":"dial: [redacted]","message":"Brokers unreachable"},"type":"ERROR"},"type":"TRACE"}`
	if len(ls) != 1 || ls[0] != want {
		t.Fatalf("got %q\nwant %s", ls, want)
	}
}

func BenchmarkSpec(b *testing.B) {
	b.ReportAllocs()
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := RunSpec(airbyte.NewEmitter(&out)); err != nil {
			b.Fatal(err)
		}
	}
}
