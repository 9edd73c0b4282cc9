package write

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/failure"
	"destination-keen/tools/keenlocal/emulator"
)

// syncBuffer is a bytes.Buffer safe for the emitter's concurrent writes
// and the test's reads; changed receives after each write.
type syncBuffer struct {
	mu      chan struct{}
	buf     bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer {
	return &syncBuffer{mu: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	select {
	case s.changed <- struct{}{}:
	default: // a wake-up is pending already
	}
	return s.buf.Write(p)
}

// waitFor returns once cond holds of the output, checking after each write;
// it fails the test after 20 s.
func (s *syncBuffer) waitFor(t *testing.T, what string, cond func(out string) bool) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for !cond(s.String()) {
		select {
		case <-s.changed:
		case <-timeout:
			t.Fatalf("no %s after 20 s:\n%s", what, s.String())
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.buf.String()
}

// TestProgressLogs runs a sync in-process whose source is slow: progress
// logs come while it runs, and states flow before the input ends.
func TestProgressLogs(t *testing.T) {
	e, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pool := e.TrustPool()
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, e.Config().JSON(nil), 0o600); err != nil {
		t.Fatal(err)
	}
	cat := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(cat, []byte(`{"streams":[{"stream":{"name":"slow","json_schema":{},"supported_sync_modes":["incremental"]},"sync_mode":"incremental","destination_sync_mode":"append"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	out := newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), airbyte.NewEmitter(out), cfg, cat, pr, Options{Progress: 50 * time.Millisecond, RootCAs: pool})
	}()
	fmt.Fprintln(pw, `{"type":"RECORD","record":{"stream":"slow","data":{"n":1},"emitted_at":1}}`)
	fmt.Fprintln(pw, `{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"slow"},"stream_state":{"n":1}}}}`)
	out.waitFor(t, "state or progress while the input is open", func(out string) bool {
		return strings.Contains(out, `"type":"STATE"`) && strings.Contains(out, "Progress: 1 record read")
	})
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"destinationStats":{"recordCount":1.0}`) {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestRejectsBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), airbyte.NewEmitter(&bytes.Buffer{}), cfg, "catalog.json", strings.NewReader(""), Options{})
	if f := failure.As(err); f.Kind != failure.Config {
		t.Fatalf("want config_error, got %v", err)
	}
}

// TestProgressLine: each line says what was read, acknowledged and echoed,
// the rate over its own interval, and what the sync waits for when nothing
// moved.
func TestProgressLine(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	start := progressSnap{at: t0}
	tests := []struct {
		name      string
		prev, cur progressSnap
		want, not string
	}{
		{"flowing", start, progressSnap{at: t0.Add(5 * time.Second), read: 5000, states: 50, acked: 4900, sent: 5000, echoed: 49},
			"Progress: 5000 records read (1000/s over the last 5s), 4900 acknowledged by Keen's brokers, 50 states read, 49 echoed", "waiting"},
		{"the rate is the interval's, not the sync's",
			progressSnap{at: t0.Add(5 * time.Second), read: 5000, acked: 5000, sent: 5000},
			progressSnap{at: t0.Add(35 * time.Second), read: 8000, acked: 8000, sent: 8000},
			"8000 records read (100/s over the last 30s)", "waiting"},
		{"brokers stalled",
			progressSnap{at: t0, read: 100, acked: 40, sent: 100},
			progressSnap{at: t0.Add(30 * time.Second), read: 100, acked: 40, sent: 100},
			"; waiting for Keen's brokers: nothing acknowledged for 30s, 60 records in flight", "source"},
		{"one record stalled",
			progressSnap{at: t0, read: 100, acked: 99, sent: 100},
			progressSnap{at: t0.Add(30 * time.Second), read: 100, acked: 99, sent: 100},
			"nothing acknowledged for 30s, 1 record in flight", "records in flight"},
		{"the source silent",
			progressSnap{at: t0, read: 100, acked: 100, sent: 100},
			progressSnap{at: t0.Add(30 * time.Second), read: 100, acked: 100, sent: 100},
			"; waiting for the source: no input for 30s", "brokers:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := progressLine(tt.prev, tt.cur, "Keen's brokers")
			if !strings.Contains(got, tt.want) || strings.Contains(got, tt.not) {
				t.Fatalf("%q: want %q, not %q", got, tt.want, tt.not)
			}
		})
	}
}

// TestGCHeadroom: the collector's target is halved only for a transport
// with more than headroomAbove bytes in flight and an environment that
// sets neither GOGC nor GOMEMLIMIT, and restored after.
func TestGCHeadroom(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	for _, tc := range []struct {
		name     string
		inFlight int
		env      map[string]string
		want     int
	}{
		{"one producer to near brokers", 4 << 20, nil, 0},
		{"at the threshold", headroomAbove, nil, 0},
		{"far brokers", 16 << 20, nil, farGCPercent},
		{"https", 18 << 20, nil, farGCPercent},
		{"the operator's GOGC", 16 << 20, map[string]string{"GOGC": "200"}, 0},
		{"the operator's GOMEMLIMIT", 16 << 20, map[string]string{"GOMEMLIMIT": "200MiB"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pct, restore := gcHeadroom(tc.inFlight, func(k string) string { return tc.env[k] })
			if pct != tc.want || (restore == nil) != (tc.want == 0) {
				t.Fatalf("percent %d (restore %v), want %d", pct, restore != nil, tc.want)
			}
			want := 100 // as the test set it
			if tc.want != 0 {
				want = tc.want
			}
			if got := debug.SetGCPercent(want); got != want {
				t.Fatalf("the runtime's target is %d, want %d", got, want)
			}
			if restore != nil {
				restore()
				if got := debug.SetGCPercent(100); got != 100 {
					t.Fatalf("restored to %d, want 100", got)
				}
			}
		})
	}
}
