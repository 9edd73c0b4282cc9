package airbyte

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
)

type failingWriter struct{ n int }

var errClosed = errors.New("broken pipe")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errClosed
	}
	w.n--
	return len(p), nil
}

func TestEmitterRemembersWriteError(t *testing.T) {
	em := NewEmitter(&failingWriter{n: 1})
	if err := em.Line([]byte(`{"type":"STATE","state":{}}`)); err != nil {
		t.Fatalf("first line: %v", err)
	}
	em.Log().Info("second")
	if !errors.Is(em.Err(), errClosed) {
		t.Fatalf("want the writer's error, got %v", em.Err())
	}
	if !errors.Is(em.Err(), errClosed) || !errors.Is(em.Line([]byte(`{}`)), errClosed) {
		t.Fatal("the first write error must stick")
	}
}

func TestEmitterLinesAreWholeUnderConcurrency(t *testing.T) {
	var out bytes.Buffer
	em := NewEmitter(&out)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				if i%2 == 0 {
					em.Log().Info("worker", "n", i)
				} else {
					_ = em.Line([]byte(`{"type":"STATE","state":{"data":{}}}`))
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") {
			t.Fatalf("torn line %q", l)
		}
	}
}

func TestRedact(t *testing.T) {
	var out bytes.Buffer
	em := NewEmitter(&out)
	em.Redact("")
	em.Redact("hunter2")
	em.Log().Warn("password hunter2 rejected")
	_ = em.ConnectionStatus(false, "bad hunter2")
	if strings.Contains(out.String(), "hunter2") || strings.Count(out.String(), Redacted) != 2 {
		t.Fatalf("not redacted: %s", out.String())
	}
}

// TestNoHTMLEscaping: what people read in raw logs keeps its arrows and
// comparisons, not \u003e.
func TestNoHTMLEscaping(t *testing.T) {
	var out bytes.Buffer
	em := NewEmitter(&out)
	em.Log().Info(`Stream "a" -> collection "a": <b> & >=`)
	if got := out.String(); !strings.Contains(got, `Stream \"a\" -> collection \"a\": <b> & >=`) || strings.Contains(got, `\u003e`) {
		t.Fatalf("escaped: %s", got)
	}
}
