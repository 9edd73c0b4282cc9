package failure

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestAs(t *testing.T) {
	cfg := Configf(io.EOF, "fix %s", "api_key")
	tests := []struct {
		name     string
		err      error
		wantType string
		wantMsg  string
	}{
		{"classified", cfg, "config_error", "fix api_key"},
		{"wrapped", fmt.Errorf("loading: %w", cfg), "config_error", "fix api_key"},
		{"transient", Transientf(nil, "brokers unreachable"), "transient_error", "brokers unreachable"},
		{"unclassified", errors.New("nil map"), "system_error", "The connector failed unexpectedly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := As(tt.err)
			if string(got.Kind.FailureType()) != tt.wantType || got.Message != tt.wantMsg {
				t.Fatalf("As(%v) = %s %q, want %s %q", tt.err, got.Kind, got.Message, tt.wantType, tt.wantMsg)
			}
		})
	}
	if got := As(nil); got != nil {
		t.Fatalf("As(nil) = %v: no error is no failure", got)
	}
	if !errors.Is(cfg, io.EOF) {
		t.Fatal("the cause must stay reachable through Unwrap")
	}
	if got := cfg.Error(); got != "fix api_key: EOF" {
		t.Fatalf("Error() = %q", got)
	}
}
