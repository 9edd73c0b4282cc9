package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"destination-keen/internal/keen"
	"destination-keen/internal/keen/keentest"
	"destination-keen/tools/keenlocal/emulator"
)

// corpusDir holds catalogs and records of real Airbyte sources, beside the
// project (see the README); tests that read it skip when it is not there.
var corpusDir = filepath.Join("..", "..", "..", "shared", "corpus", "real-sources")

// source is one folder of the corpus made into a sync: every record,
// each followed by a STATE of its stream, so that every state counts one.
type source struct {
	name    string
	catalog []byte
	records []corpusRecord
	input   string
}

type corpusRecord struct {
	Stream    string          `json:"stream"`
	Data      json.RawMessage `json:"data"`
	EmittedAt int64           `json:"emitted_at"`
	// breaks is why Keen would drop the record as it is ("" when it would
	// not), by the emulator's rules.
	breaks string
}

func loadSources(t *testing.T) []source {
	t.Helper()
	dirs, err := os.ReadDir(corpusDir)
	if os.IsNotExist(err) {
		t.Skip("../shared/corpus/real-sources is not beside the project: no real-source corpus to sync")
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []source
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		s := source{name: d.Name()}
		if s.catalog, err = os.ReadFile(filepath.Join(corpusDir, d.Name(), "catalog.json")); err != nil {
			t.Fatal(err)
		}
		f, err := os.ReadFile(filepath.Join(corpusDir, d.Name(), "records.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		var in strings.Builder
		sc := bufio.NewScanner(bytes.NewReader(f))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var r corpusRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", d.Name(), err)
			}
			if _, err := emulator.CheckEvent(r.Data); err != nil {
				r.breaks = err.Error()
			}
			s.records = append(s.records, r)
			in.WriteString(rec(r.Stream, string(r.Data), r.EmittedAt) + "\n")
			in.WriteString(streamState(r.Stream, fmt.Sprint(len(s.records))) + "\n")
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		s.input = in.String()
		out = append(out, s)
	}
	return out
}

// collectionOf is the collection a stream's events land in.
func collectionOf(t *testing.T, stream string) string {
	c, err := keen.CollectionName(stream)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRealSources syncs every folder of the real-source corpus through the
// emulator under each nonconforming_records policy.
func TestRealSources(t *testing.T) {
	sources := loadSources(t)
	var records, breaking int
	for _, s := range sources {
		for _, r := range s.records {
			records++
			if r.breaks != "" {
				breaking++
			}
		}
	}
	t.Logf("%d records in %d sources, %d of them break Keen's rules as they are", records, len(sources), breaking)
	if breaking == 0 {
		t.Fatal("the corpus is meant to hold records Keen would drop; found none")
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			t.Run("fix", func(t *testing.T) { syncSource(t, s, "fix") })
			t.Run("skip", func(t *testing.T) { syncSource(t, s, "skip") })
			t.Run("fail", func(t *testing.T) { syncSource(t, s, "fail") })
		})
	}
}

func syncSource(t *testing.T, s source, policy string) {
	e := newEnv(t, emulator.Options{})
	cat := filepath.Join(e.dir, "catalog.json")
	if err := os.WriteFile(cat, s.catalog, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.run(s.input, "write", "--config", e.config(map[string]any{"nonconforming_records": policy}), "--catalog", cat)
	e.noRejections()

	firstBreak := slices.IndexFunc(s.records, func(r corpusRecord) bool { return r.breaks != "" })
	if policy == "fail" && firstBreak >= 0 {
		tr := r.trace(t)
		line := 2*firstBreak + 1
		want := fmt.Sprintf("Input line %d: a record of stream %q breaks Keen's event rules", line, s.records[firstBreak].Stream)
		if r.code != 1 || tr["failure_type"] != "system_error" || !strings.Contains(tr["message"].(string), want) {
			t.Fatalf("exit %d, trace %v; want %q", r.code, tr, want)
		}
		// Every record before it was delivered, so every state before it is
		// echoed; none after.
		if got := len(r.states()); got != firstBreak {
			t.Fatalf("%d states echoed, want the %d before line %d", got, firstBreak, line)
		}
		return
	}
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	states := r.states()
	if len(states) != len(s.records) {
		t.Fatalf("%d states echoed for %d", len(states), len(s.records))
	}
	want := map[string][]string{} // values per collection
	kept := map[string]int{}      // events per collection
	for i, rc := range s.records {
		stats := states[i]["destinationStats"].(map[string]any)
		if fmt.Sprint(stats["recordCount"]) != "1.0" && fmt.Sprint(stats["recordCount"]) != "1" {
			t.Fatalf("state %d: recordCount %v", i, stats["recordCount"])
		}
		skipped := policy == "skip" && rc.breaks != ""
		if got := fmt.Sprint(stats["rejectedRecordCount"]); skipped != (got == "1" || got == "1.0") {
			t.Fatalf("state %d (record breaks rules: %q): rejectedRecordCount %v", i, rc.breaks, stats["rejectedRecordCount"])
		}
		if skipped {
			continue
		}
		c := collectionOf(t, rc.Stream)
		kept[c]++
		ls, err := keentest.Leaves(rc.Data)
		if err != nil {
			t.Fatal(err)
		}
		want[c] = append(want[c], ls...)
	}
	for c, n := range kept {
		evs := e.events(c)
		if len(evs) != n {
			t.Fatalf("collection %q holds %d events, want %d", c, len(evs), n)
		}
		var got []string
		for _, ev := range evs {
			delete(ev, "_airbyte_generation_id") // what an overwrite stream adds
			b, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			ls, err := keentest.Leaves(b)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ls...)
		}
		slices.Sort(got)
		slices.Sort(want[c])
		if !slices.Equal(got, want[c]) {
			t.Fatalf("collection %q: the events' values differ from the records'\n got %.600q\nwant %.600q", c, got, want[c])
		}
	}
	// Warnings name a property once, never once per record.
	seen := map[string]bool{}
	for _, l := range r.ofType("LOG") {
		if lg := l["log"].(map[string]any); lg["level"] == "WARN" {
			msg := lg["message"].(string)
			if seen[msg] {
				t.Fatalf("the same WARN twice: %s", msg)
			}
			seen[msg] = true
		}
	}
	if firstBreak >= 0 {
		logs := r.logs()
		switch policy {
		case "fix":
			if !strings.Contains(logs, "changed to follow Keen's rules") || !strings.Contains(logs, "as Keen would drop the event otherwise") {
				t.Fatalf("the log does not say what changed:\n%s", logs)
			}
		case "skip":
			if !strings.Contains(logs, "breaking Keen's rules skipped") || !strings.Contains(logs, "nonconforming_records is skip") {
				t.Fatalf("the log does not say what was skipped:\n%s", logs)
			}
		}
	}
}

// TestNonconformingFixture sends a record that breaks every rule at once
// (internal/keen/testdata/conform/rules.json): Keen takes its event, every
// value is in it, keen.addons is untouched, and the summary lists changes.
func TestNonconformingFixture(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		data, err := os.ReadFile(filepath.Join("..", "..", "internal", "keen", "testdata", "conform", "rules.json"))
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			t.Fatal(err)
		}
		e := newEnvOver(t, tr, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(cstream{name: "rules", mode: "append"}))
		r := e.run(lines(rec("rules", compact.String(), 1700000000000), streamState("rules", "1")), "write", "--config", e.config(nil), "--catalog", cat)
		if r.code != 0 || len(r.states()) != 1 {
			t.Fatalf("exit %d:\n%s", r.code, r.stdout)
		}
		e.noRejections()
		evs := e.events("rules")
		if len(evs) != 1 {
			t.Fatalf("%d events", len(evs))
		}
		b, _ := json.Marshal(evs[0])
		got, err := keentest.Leaves(b)
		if err != nil {
			t.Fatal(err)
		}
		want, err := keentest.Leaves(compact.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("values differ:\n got %q\nwant %q", got, want)
		}
		addons := evs[0]["keen"].(map[string]any)["addons"].([]any)
		if len(addons) != 1 || addons[0].(map[string]any)["name"] != "keen:ip_to_geo" {
			t.Fatalf("keen.addons changed: %v", addons)
		}
		logs := r.logs()
		for _, want := range []string{
			`1 record changed to follow Keen's rules (12 property names changed, 3 arrays kept as JSON text, 4 values made safe)`,
			`["ad_metrics.cost"] (a property name containing '.') is now ad_metrics_cost`,
			`Stream "rules": fee_details (an array holding objects or arrays) is now a string holding its JSON text`,
			`Stream "rules": big (a number outside the range of a double) is now a string holding the number's text`,
			`Stream "rules": cut (a string holding a lone UTF-16 surrogate) now holds U+FFFD in its place`,
			"[\"name\ufffd\"] (a property name holding a lone UTF-16 surrogate) is now name\ufffd",
		} {
			if !strings.Contains(logs, want) {
				t.Errorf("the log lacks %q:\n%s", want, logs)
			}
		}
	})
}
