package airbyte

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// secret logs as [redacted] through slog.LogValuer, as config.Secret does.
type secret string

func (secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// TestLog: each slog record is one LOG message at the mapped level, with
// its attributes after the text; secrets never appear, registered or typed.
func TestLog(t *testing.T) {
	tests := []struct {
		name  string
		log   func(*slog.Logger)
		level string
		msg   string
	}{
		{"debug", func(l *slog.Logger) { l.Debug("goroutines") }, "DEBUG", "goroutines"},
		{"below debug", func(l *slog.Logger) { l.Log(context.Background(), slog.LevelDebug-4, "deep") }, "DEBUG", "deep"},
		{"info", func(l *slog.Logger) { l.Info("started") }, "INFO", "started"},
		{"between info and warn", func(l *slog.Logger) { l.Log(context.Background(), slog.LevelInfo+2, "notice") }, "INFO", "notice"},
		{"warn", func(l *slog.Logger) { l.Warn("slow") }, "WARN", "slow"},
		{"error", func(l *slog.Logger) { l.Error("failed") }, "ERROR", "failed"},
		{"above error", func(l *slog.Logger) { l.Log(context.Background(), slog.LevelError+4, "worse") }, "ERROR", "worse"},
		{"attributes", func(l *slog.Logger) { l.Info("sent", "n", 3, "stream", "a b", "ok", true, "empty", "") },
			"INFO", `sent n=3 stream="a b" ok=true empty=""`},
		{"with and groups", func(l *slog.Logger) {
			l.With("sync", 1).WithGroup("lane").With("id", 2).Info("busy", slog.Group("batch", "n", 5), "x", 1)
		}, "INFO", "busy sync=1 lane.id=2 lane.batch.n=5 lane.x=1"},
		{"empty group name", func(l *slog.Logger) { l.WithGroup("").Info("m", "k", "v") }, "INFO", "m k=v"},
		{"zero attribute dropped", func(l *slog.Logger) { l.Info("m", slog.Attr{}) }, "INFO", "m"},
		{"registered secret", func(l *slog.Logger) { l.Warn("key hunter2 refused", "key", "hunter2") }, "WARN", "key [redacted] refused key=[redacted]"},
		{"typed secret", func(l *slog.Logger) { l.Info("config", "api_key", secret("other-secret")) }, "INFO", "config api_key=[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			em := NewEmitter(&out)
			em.Redact("hunter2")
			tt.log(em.Log())
			var m struct {
				Type string
				Log  struct{ Level, Message string }
			}
			if err := json.Unmarshal(out.Bytes(), &m); err != nil || strings.Count(out.String(), "\n") != 1 {
				t.Fatalf("not one message (%v): %s", err, out.String())
			}
			if m.Type != "LOG" || m.Log.Level != tt.level || m.Log.Message != tt.msg {
				t.Fatalf("got %s %s %q, want LOG %s %q", m.Type, m.Log.Level, m.Log.Message, tt.level, tt.msg)
			}
			if strings.Contains(out.String(), "secret") && !strings.Contains(tt.msg, "secret") {
				t.Fatalf("a secret leaked: %s", out.String())
			}
		})
	}
}

// TestLogIsOneLogger: every caller shares one logger, and so one order.
func TestLogIsOneLogger(t *testing.T) {
	em := NewEmitter(&bytes.Buffer{})
	if em.Log() != em.Log() {
		t.Fatal("Log returned two loggers")
	}
}
