package write

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/checkpoint"
	"destination-keen/internal/config"
	"destination-keen/internal/failure"
)

// watched is a syncRun with only what the watchdog reads: a tracker with
// records in flight, a delivery timeout, and a diagnosis that counts its
// calls and answers refuse.
type watched struct {
	*syncRun
	out       *syncBuffer // written by the watchdog, read by the test
	diagnoses atomic.Int32
	refuse    error
}

func newWatched(t *testing.T, inFlight int, timeout time.Duration) *watched {
	t.Helper()
	out := newSyncBuffer()
	em := airbyte.NewEmitter(out)
	w := &watched{out: out}
	w.syncRun = &syncRun{em: em, cfg: &config.Config{DeliveryTimeout: timeout}, tracker: checkpoint.New(em.Line), peer: kafkaPeer}
	w.diagnose = func() error {
		w.diagnoses.Add(1)
		return w.refuse
	}
	for range inFlight {
		w.tracker.Next()
	}
	return w
}

// start runs the watchdog until the test's end or the first failure.
func (w *watched) start(t *testing.T) (stopped <-chan struct{}) {
	ctx, cancel := context.WithCancel(t.Context())
	w.cancel = cancel
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.watch(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return done
}

// TestWatchdog runs the watchdog on a fake clock (testing/synctest): its
// durations (the stall notice at 5 s, a diagnosis every 15 s, the delivery
// timeout) are what the test checks, at their real values.
func TestWatchdog(t *testing.T) {
	t.Run("a stall is told after 5 s and its end after", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWatched(t, 3, time.Hour)
			w.start(t)
			time.Sleep(4500 * time.Millisecond)
			synctest.Wait()
			if w.out.String() != "" || w.diagnoses.Load() != 0 {
				t.Fatalf("before 5 s of stall: %d diagnoses, %s", w.diagnoses.Load(), w.out)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if !strings.Contains(w.out.String(), `"level":"WARN","message":"Nothing acknowledged by Keen's Kafka brokers for 5s, with 3 records in flight; waiting, up to 1h0m0s"`) || w.diagnoses.Load() != 1 {
				t.Fatalf("at 5 s of stall: %d diagnoses, %s", w.diagnoses.Load(), w.out)
			}
			time.Sleep(14 * time.Second)
			synctest.Wait()
			if n := w.diagnoses.Load(); n != 1 || strings.Count(w.out.String(), "\n") != 1 {
				t.Fatalf("within 15 s of the first diagnosis: %d diagnoses, %s", n, w.out)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if n := w.diagnoses.Load(); n != 2 {
				t.Fatalf("15 s after the first diagnosis: %d diagnoses", n)
			}
			if err := w.tracker.Done(1); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			if !strings.Contains(w.out.String(), `"level":"INFO","message":"Acknowledgements from Keen's Kafka brokers resumed, after 21s without"`) {
				t.Fatalf("after an acknowledgement: %s", w.out)
			}
			if w.firstFailure() != nil {
				t.Fatalf("failed: %v", w.firstFailure())
			}
		})
	})
	t.Run("no stall while acknowledgements move", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWatched(t, 30, time.Hour)
			w.start(t)
			for seq := range uint64(30) {
				time.Sleep(2 * time.Second)
				if err := w.tracker.Done(seq + 1); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(time.Minute) // nothing in flight: nothing to wait for
			synctest.Wait()
			if w.out.String() != "" || w.diagnoses.Load() != 0 || w.firstFailure() != nil {
				t.Fatalf("%d diagnoses, %v, %s", w.diagnoses.Load(), w.firstFailure(), w.out)
			}
		})
	})
	t.Run("the delivery timeout fails the sync", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWatched(t, 2, 40*time.Second)
			stopped := w.start(t)
			time.Sleep(39500 * time.Millisecond)
			synctest.Wait()
			if w.firstFailure() != nil {
				t.Fatalf("failed before the delivery timeout: %v", w.firstFailure())
			}
			time.Sleep(time.Second)
			<-stopped
			f := failure.As(w.firstFailure())
			if f == nil || f.Kind != failure.Transient || f.Message != "Nothing acknowledged by Keen's Kafka brokers for 40s (delivery_timeout_seconds); 2 records were not delivered" {
				t.Fatalf("got %v", w.firstFailure())
			}
			if !w.noFlush.Load() {
				t.Fatal("the final flush would wait for brokers that acknowledge nothing")
			}
		})
	})
	t.Run("a refused key fails the sync at its diagnosis", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w := newWatched(t, 1, time.Hour)
			w.refuse = failure.Configf(errors.New("SASL"), "Keen's Kafka brokers rejected the Project ID and API key")
			stopped := w.start(t)
			time.Sleep(6 * time.Second)
			<-stopped
			if f := failure.As(w.firstFailure()); f == nil || f.Kind != failure.Config || !w.noFlush.Load() {
				t.Fatalf("got %v, noFlush %v", w.firstFailure(), w.noFlush.Load())
			}
			if !strings.Contains(w.out.String(), "with 1 record in flight;") {
				t.Fatalf("one record, plural: %s", w.out)
			}
		})
	})
}
