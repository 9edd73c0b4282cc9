package pipeline

import (
	"fmt"
	"strings"
	"sync"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/catalog"
	"destination-keen/internal/keen"
)

// What conforming records to Keen's rules changed, per stream, as the
// sequencer applies records in input order: counts for the summary, a WARN
// the first time a property is changed (up to warnPaths per stream), and
// the first few changed properties for the summary, so that a user can find
// their data in Keen.
const (
	warnPaths    = 20
	summaryPaths = 5
)

type conformLog struct {
	mu      sync.Mutex // the sequencer writes, the summary reads
	streams []conformStream
}

type conformStream struct {
	records, names, arrays, values, skipped int64
	seen                                    map[string]bool // paths warned about
	first                                   []keen.Change
	skippedRules                            map[keen.Rule]bool
}

func newConformLog(streams int) *conformLog {
	return &conformLog{streams: make([]conformStream, streams)}
}

// conformed counts a record sent with changes and warns about properties
// not seen changed before in its stream.
func (pl *Pipeline) conformed(p *catalog.Plan, changes []keen.Change) {
	l := pl.conform
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.streams[p.Index]
	s.records++
	for _, c := range changes {
		switch {
		case c.Renamed():
			s.names++
		case c.Rule == keen.RuleNestedArray:
			s.arrays++
		default:
			s.values++
		}
		if len(s.seen) > warnPaths {
			continue
		}
		key := fmt.Sprint(c.Rule, keen.FormatPath(c.Path))
		if s.seen == nil {
			s.seen = map[string]bool{}
		}
		if s.seen[key] {
			continue
		}
		s.seen[key] = true
		if len(s.first) < summaryPaths {
			s.first = append(s.first, c)
		}
		if len(s.seen) > warnPaths {
			pl.em.Log().Warn(fmt.Sprintf("Stream %q: more properties were changed to follow Keen's rules; the sync summary counts them", p.Name()))
			continue
		}
		pl.em.Log().Warn(fmt.Sprintf("Stream %q: %s, as Keen would drop the event otherwise", p.Name(), c))
	}
}

// reject leaves out a record that breaks Keen's rules (nonconforming_records:
// skip): it counts for its state, as rejected, and one WARN per stream and
// rule names the property.
func (pl *Pipeline) reject(it *item) error {
	p := it.plan
	pl.count(p, true, it.lineNo)
	pl.streams[p.Index].Nonconforming.Add(1)
	c := it.changes[0]
	pl.conform.mu.Lock()
	s := &pl.conform.streams[p.Index]
	s.skipped++
	first := !s.skippedRules[c.Rule]
	if first {
		if s.skippedRules == nil {
			s.skippedRules = map[keen.Rule]bool{}
		}
		s.skippedRules[c.Rule] = true
	}
	pl.conform.mu.Unlock()
	if first {
		pl.em.Log().Warn(fmt.Sprintf("Skipping the records of stream %q with %s (first on input line %d, at %s): Keen would drop them; nonconforming_records is skip", p.Name(), c.Rule, it.lineNo, keen.FormatPath(c.Path)))
	}
	return pl.tracker.Done(pl.tracker.Next())
}

// ConformSummary returns what the stream's line of the sync summary says
// about records changed or skipped to follow Keen's rules, or "".
func (pl *Pipeline) ConformSummary(p *catalog.Plan) string {
	l := pl.conform
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.streams[p.Index]
	var parts []string
	if s.records > 0 {
		values := ""
		if s.values > 0 {
			values = fmt.Sprintf(", %d %s made safe", s.values, airbyte.Plural(s.values, "value", "values"))
		}
		parts = append(parts, fmt.Sprintf("%d %s changed to follow Keen's rules (%d property %s changed, %d %s kept as JSON text%s)",
			s.records, airbyte.Plural(s.records, "record", "records"), s.names, airbyte.Plural(s.names, "name", "names"), s.arrays, airbyte.Plural(s.arrays, "array", "arrays"), values))
		var cs []string
		for _, c := range s.first {
			cs = append(cs, c.String())
		}
		parts = append(parts, "first changes: "+strings.Join(cs, "; "))
	}
	if s.skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d %s breaking Keen's rules skipped", s.skipped, airbyte.Plural(s.skipped, "record", "records")))
	}
	return strings.Join(parts, "; ")
}
