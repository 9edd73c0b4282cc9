package write

import (
	"fmt"
	"time"

	"destination-keen/internal/airbyte"
)

// Progress lines: the first soon after the start, so that an operator sees
// at once that records flow, then at a steady interval. Each says what was
// read, acknowledged and echoed, the rate over the last interval (a rate
// since the start hides a stall), and what the sync waits for when nothing
// moved.
const (
	firstProgress   = 5 * time.Second
	defaultProgress = 30 * time.Second
)

// progressSnap is what the counters said at one progress line.
type progressSnap struct {
	at           time.Time
	read, states int64
	acked, sent  uint64 // records finished and numbered (the tracker's)
	echoed       int
}

// progressLine describes cur against prev, the previous line's snapshot
// (or the start's).
// peer names who acknowledges: "Keen's brokers" or "Keen".
func progressLine(prev, cur progressSnap, peer string) string {
	secs := max(cur.at.Sub(prev.at).Seconds(), 1e-3)
	interval := cur.at.Sub(prev.at).Round(time.Second)
	if interval == 0 {
		interval = cur.at.Sub(prev.at).Round(time.Millisecond) // tests' short intervals
	}
	line := fmt.Sprintf("Progress: %d %s read (%.0f/s over the last %s), %d acknowledged by %s, %d %s read, %d echoed",
		cur.read, airbyte.Plural(cur.read, "record", "records"), float64(cur.read-prev.read)/secs, interval, cur.acked, peer, cur.states, airbyte.Plural(cur.states, "state", "states"), cur.echoed)
	inFlight := cur.sent - cur.acked
	switch {
	case inFlight > 0 && cur.acked == prev.acked:
		line += fmt.Sprintf("; waiting for %s: nothing acknowledged for %s, %d %s in flight", peer, interval, inFlight, airbyte.Plural(int64(inFlight), "record", "records"))
	case cur.read == prev.read && inFlight == 0:
		line += fmt.Sprintf("; waiting for the source: no input for %s", interval)
	}
	return line
}

// snap takes the counters now.
func (s *syncRun) snap(now time.Time) progressSnap {
	read, states := s.pipe.Progress()
	st := s.tracker.Stats()
	return progressSnap{at: now, read: read, states: states, acked: st.Finished, sent: st.Records, echoed: st.Emitted}
}
