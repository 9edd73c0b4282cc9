package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"destination-keen/tools/keenlocal/emulator"
)

// Counts an operator reads after a sync, failed or not, are of what was
// applied in input order: a stream's figures add up to the records read for
// it, never counting work done past the point of failure.

var (
	streamLine  = regexp.MustCompile(`Stream "orders" -> "orders": (\d+) records; keen.timestamp from the cursor for (\d+), from emitted_at for (\d+)`)
	summaryLine = regexp.MustCompile(`Sync summary: (\d+) records? read, (\d+) acknowledged by Keen's brokers, (\d+) skipped`)
)

func TestHonestCounts(t *testing.T) {
	orders := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, rec("orders", fmt.Sprintf(`{"id":%d,"u":"2024-03-01T10:15:00Z"}`, i), 1))
		}
		return out
	}
	huge := rec("orders", `{"id":0,"u":"2024-03-01T10:15:00Z","blob":"`+strings.Repeat("z", 1_100_000)+`"}`, 1)
	tests := []struct {
		name   string
		input  []string
		config map[string]any
		code   int
		read   int // orders read and applied
		acked  int
		skip   int
	}{
		{"success", orders(1, 5000), nil, 0, 5000, 5000, 0},
		// A bad line at 51, with 4,949 records after it that workers may
		// have shaped already.
		{"failure mid-stream", append(append(orders(1, 50), rec("unknown", `{}`, 1)), orders(52, 5000)...), nil, 1, 50, 50, 0},
		{"oversized, fail", append(append(orders(1, 149), huge), orders(151, 500)...), nil, 1, 150, 149, 0},
		{"oversized, skip", append(append(orders(1, 149), huge), orders(151, 341)...), map[string]any{"oversized_records": "skip"}, 0, 341, 340, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, emulator.Options{})
			cat := e.write("catalog.json", catalogDoc(cstream{name: "orders", mode: "append", cursor: []string{"u"}}))
			r := e.run(lines(tt.input...), "write", "--config", e.config(tt.config), "--catalog", cat)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d:\n%.2000s", r.code, tt.code, r.stdout)
			}
			logs := r.logs()
			m := streamLine.FindStringSubmatch(logs)
			if m == nil {
				t.Fatalf("no per-stream line:\n%s", logs)
			}
			n, cursor, emitted := atoi(m[1]), atoi(m[2]), atoi(m[3])
			if n != tt.read || cursor+emitted != n {
				t.Fatalf("orders: %d records, %d from the cursor + %d from emitted_at; want %d records, adding up", n, cursor, emitted, tt.read)
			}
			sm := summaryLine.FindStringSubmatch(logs)
			if sm == nil || atoi(sm[2]) != tt.acked || atoi(sm[3]) != tt.skip {
				t.Fatalf("summary %q, want %d acknowledged and %d skipped", sm, tt.acked, tt.skip)
			}
		})
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
