package pipeline

import (
	"strings"
	"testing"
)

// TestCompletion walks the rule of completion.go through every sequence of
// the platform's words that matters: only a COMPLETE after a stream's last
// record, with no INCOMPLETE or ERROR anywhere, completes it.
func TestCompletion(t *testing.T) {
	names := map[string]end{"COMPLETE": endComplete, "INCOMPLETE": endIncomplete, "ERROR": endError, "record": endRecord}
	tests := []struct {
		events string
		want   Completion
	}{
		{"", NotCompleted},
		{"record record", NotCompleted},
		{"record COMPLETE", Completed},
		{"COMPLETE", Completed}, // a Clear: no records
		{"record COMPLETE COMPLETE", Completed},
		{"record COMPLETE record", Reopened},
		{"record COMPLETE record record", Reopened},
		{"record COMPLETE record COMPLETE", Completed},
		{"record INCOMPLETE", Incomplete},
		{"record INCOMPLETE COMPLETE", Incomplete},
		{"COMPLETE INCOMPLETE", Incomplete},
		{"record COMPLETE record INCOMPLETE COMPLETE", Incomplete},
		{"record ERROR", Failed},
		{"record COMPLETE ERROR", Failed},
		{"ERROR COMPLETE", Failed},
		{"ERROR INCOMPLETE", Failed},
		{"INCOMPLETE ERROR", Incomplete},
	}
	for _, tt := range tests {
		t.Run(tt.events, func(t *testing.T) {
			var s Counts
			for _, w := range strings.Fields(tt.events) {
				s.apply(names[w])
			}
			if got := s.Completion(); got != tt.want {
				t.Fatalf("%q: %v, want %v", tt.events, got, tt.want)
			}
		})
	}
}

// TestReopenedOnce: apply reports the one record that takes a completion
// back, so that the log says it once, not once per record.
func TestReopenedOnce(t *testing.T) {
	var s Counts
	s.apply(endRecord)
	s.apply(endComplete)
	var reports []bool
	for range 3 {
		reports = append(reports, s.apply(endRecord))
	}
	if !reports[0] || reports[1] || reports[2] {
		t.Fatalf("reopened reported %v, want only for the first record after COMPLETE", reports)
	}
}

// TestWhy: every completion that keeps old events says why, and no two say
// the same.
func TestWhy(t *testing.T) {
	seen := map[string]Completion{}
	for _, c := range []Completion{NotCompleted, Completed, Reopened, Incomplete, Failed} {
		why := c.Why()
		if why == "" {
			t.Fatalf("%d: no reason", c)
		}
		if other, dup := seen[why]; dup {
			t.Fatalf("%d and %d give the same reason %q", c, other, why)
		}
		seen[why] = c
	}
	if !strings.Contains(NotCompleted.Why(), "no COMPLETE") {
		t.Fatalf("the most common case does not name what was missing: %q", NotCompleted.Why())
	}
}
