package write

import (
	"context"
	"fmt"
	"sync"
	"time"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/failure"
)

// stallNotice is how long the brokers may acknowledge nothing, with records
// in flight, before the connector says it is waiting and checks whether
// they still accept its key.
const stallNotice = 5 * time.Second

// watch is the watchdog of acknowledgements, until ctx ends: it logs when
// the brokers stop acknowledging and when they come back, fails the sync
// with a config_error when they now refuse the key or the certificate, and
// with a transient_error when they have acknowledged nothing for the
// delivery timeout. It returns once its probes have ended too.
func (s *syncRun) watch(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var probes sync.WaitGroup
	defer probes.Wait()
	var (
		last      = s.tracker.Stats().Finished
		progress  = time.Now()
		waiting   bool
		diagnosed time.Time
	)
	// resumed reports whether acknowledgements moved since the last look.
	resumed := func(now time.Time) bool {
		st := s.tracker.Stats()
		if st.Finished == last && st.Finished != st.Records {
			return false
		}
		if waiting {
			s.em.Log().Info(fmt.Sprintf("Acknowledgements from %s resumed, after %s without", s.peer.long, now.Sub(progress).Round(time.Second)))
			waiting = false
		}
		last, progress = st.Finished, now
		return true
	}
	for {
		select {
		case <-ctx.Done():
			resumed(time.Now())
			return
		case now := <-tick.C:
			if resumed(now) {
				continue
			}
			stalled := now.Sub(progress)
			if stalled < stallNotice {
				continue
			}
			if !waiting {
				waiting = true
				st := s.tracker.Stats()
				n := int64(st.Records - st.Finished)
				s.em.Log().Warn(fmt.Sprintf("Nothing acknowledged by %s for %s, with %d %s in flight; waiting, up to %s", s.peer.long, stalled.Round(time.Second), n, airbyte.Plural(n, "record", "records"), s.cfg.DeliveryTimeout))
			}
			if now.Sub(diagnosed) >= 15*time.Second {
				// A fresh connection says whether the brokers now refuse the
				// key or the certificate; it takes seconds, so the ticks go
				// on meanwhile.
				diagnosed = now
				probes.Add(1)
				go func() {
					defer probes.Done()
					if err := s.diagnose(); err != nil {
						s.noFlush.Store(true) // the brokers refuse us: nothing will flush
						s.fail(err)
					}
				}()
			}
			if stalled >= s.cfg.DeliveryTimeout {
				st := s.tracker.Stats()
				s.noFlush.Store(true) // nothing will flush: do not wait for it
				n := int64(st.Records - st.Finished)
				s.fail(failure.Transientf(nil, "Nothing acknowledged by %s for %s (delivery_timeout_seconds); %d %s not delivered", s.peer.long, stalled.Round(time.Second), n, airbyte.Plural(n, "record was", "records were")))
				return
			}
		}
	}
}
