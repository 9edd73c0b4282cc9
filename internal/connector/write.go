package connector

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/catalog"
	"destination-keen/internal/checkpoint"
	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/keenapi"
	"destination-keen/internal/message"
	"destination-keen/internal/sink"
)

// WriteOptions are the knobs of a sync that are not in the user's config.
type WriteOptions struct {
	// Progress is the interval of progress logs; default 30 s.
	Progress time.Duration
	// FlushTimeout bounds the final flush after a failure or a signal;
	// default 20 s.
	FlushTimeout time.Duration
	// RootCAs replaces the system trust store (tests only).
	RootCAs *x509.CertPool
	// Sink tunes the producer.
	Sink sink.Options
}

// RunWrite runs a sync: config and catalog first (no network before both are
// valid), then the brokers, then the deletes of truncating collections, then
// stdin until its end.
func RunWrite(ctx context.Context, em *airbyte.Emitter, configPath, catalogPath string, stdin io.Reader, opts WriteOptions) (err error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return err
	}
	em.Redact(cfg.APIKey.Reveal())
	cat, err := catalog.Load(catalogPath, cfg.InferTimestamp)
	if err != nil {
		return err
	}
	if opts.Progress <= 0 {
		opts.Progress = 30 * time.Second
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 20 * time.Second
	}
	logPlan(em, cfg, cat)

	goroutines := runtime.NumGoroutine()
	defer func() {
		// The producer's connections close asynchronously; after a sync that
		// ended well, give them a moment to go before counting (the soak
		// checks that nothing is left). After a failure the reader may still
		// wait on stdin: count at once rather than delay the exit.
		end := runtime.NumGoroutine()
		for deadline := time.Now().Add(2 * time.Second); err == nil && end > goroutines && time.Now().Before(deadline); end = runtime.NumGoroutine() {
			time.Sleep(10 * time.Millisecond)
		}
		_ = em.Logf(airbyte.Debug, "Goroutines: %d at start, %d at the end", goroutines, end)
	}()
	w := &writer{em: em, cat: cat, cfg: cfg, opts: opts, stop: make(chan struct{}), sinceState: make([]int64, len(cat.Plans)), rejectedSince: make([]int64, len(cat.Plans)), conform: newConformLog(len(cat.Plans))}
	w.tr = checkpoint.New(em.Line)

	so := opts.Sink
	so.Compression = cfg.Compression
	// sarama's own retries outlast the delivery timeout, which the watchdog
	// enforces with a clearer message.
	so.Patience = cfg.DeliveryTimeout + 30*time.Second
	so.RootCAs = opts.RootCAs
	so.Logf = func(format string, args ...any) { _ = em.Logf(airbyte.Warn, format, args...) }
	s, err := sink.Open(ctx, cfg, so, w.acked, w.failed)
	if err != nil {
		return err
	}
	w.sink = s
	if !s.Idempotent {
		_ = em.Logf(airbyte.Warn, "Producing without idempotence: if a batch is retried after the brokers stored it, its events appear twice in Keen")
	}

	if err := w.truncate(ctx); err != nil {
		w.closeSink()
		return err
	}
	return w.run(ctx, stdin)
}

func logPlan(em *airbyte.Emitter, cfg *config.Config, cat *catalog.Catalog) {
	_ = em.Logf(airbyte.Info, "destination-keen %s: %s", Version, cfg)
	for _, p := range cat.Plans {
		ts := "emitted_at"
		if p.Cursor != nil {
			ts = fmt.Sprintf("cursor %s (%s), else emitted_at", strings.Join(p.Cursor, "."), p.CursorKind)
		}
		_ = em.Logf(airbyte.Info, "Stream %q -> collection %q: %s; keen.timestamp from %s", p.Name(), p.Collection, p.Reason, ts)
	}
	for _, warning := range cat.Warnings {
		_ = em.Logf(airbyte.Warn, "Namespaces are not part of collection names: %s", warning)
	}
}

type writer struct {
	em   *airbyte.Emitter
	cat  *catalog.Catalog
	cfg  *config.Config
	opts WriteOptions
	sink *sink.Sink
	tr   *checkpoint.Tracker

	// Counts since the previous state, touched by the sequencer only.
	sinceState    []int64 // per plan, for STREAM states
	rejectedSince []int64
	total         int64 // all streams, for GLOBAL and LEGACY states
	rejectedTotal int64

	stop  chan struct{} // closed on the first failure
	errMu sync.Mutex
	err   error // the first failure, under errMu

	sendMu sync.Mutex // held while sending; closed is set under it
	closed bool

	conform *conformLog // what conforming to Keen's rules changed

	records    atomic.Int64
	states     atomic.Int64
	quickClose atomic.Bool
}

// fail records the first error that ends the sync and tells the reader to
// stop.
func (w *writer) fail(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
		close(w.stop)
	}
}

// failure returns the error that ended the sync, or nil.
func (w *writer) failure() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *writer) acked(env *sink.Envelope) {
	if err := w.tr.Done(env.Seq); err != nil {
		w.fail(failure.Systemf(err, "Cannot write to stdout"))
	}
}

func (w *writer) failed(env *sink.Envelope, err error) {
	if sink.TooLarge(err) && w.cfg.SkipOversized {
		// The brokers' limit is below ours. The record is left out like the
		// ones the connector finds too large itself, but the state it belongs
		// to may already have gone with its counts: the end-of-sync log
		// counts it.
		p := w.cat.Plans[env.Tag]
		p.Rejected.Add(1)
		_ = w.em.Logf(airbyte.Warn, "Keen's brokers refused a record of stream %q as too large (%d bytes); skipped", p.Name(), len(env.Buf))
		if err := w.tr.Done(env.Seq); err != nil {
			w.fail(failure.Systemf(err, "Cannot write to stdout"))
		}
		return
	}
	w.fail(sink.Classify(err, env.Topic(), env.Stream, w.cfg.Brokers))
}

// truncate deletes the collection of every truncating stream before any of
// its records is produced.
func (w *writer) truncate(ctx context.Context) error {
	api := keenapi.New(w.cfg)
	api.Logf = func(format string, args ...any) { _ = w.em.Logf(airbyte.Warn, format, args...) }
	if w.opts.RootCAs != nil {
		api.SetRootCAs(w.opts.RootCAs)
	}
	done := map[string]bool{}
	for _, p := range w.cat.Plans {
		if !p.Truncate || done[p.Collection] {
			continue
		}
		done[p.Collection] = true
		began := time.Now()
		existed, err := api.DeleteCollection(ctx, p.Collection)
		if err != nil {
			if f, ok := errors.AsType[*failure.Error](err); ok && f.Stream == "" {
				f.Stream = p.Stream
			}
			return err
		}
		if !existed {
			_ = w.em.Logf(airbyte.Info, "Collection %q of stream %q (%s) does not exist in Keen yet: nothing to delete", p.Collection, p.Name(), p.Reason)
			continue
		}
		_ = w.em.Logf(airbyte.Info, "Deleted collection %q for stream %q (%s) in %s", p.Collection, p.Name(), p.Reason, time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// run reads stdin in its own goroutine, so that a signal or a producer
// failure can end the sync while a read blocks.
func (w *writer) run(ctx context.Context, stdin io.Reader) error {
	began := time.Now()
	readDone := make(chan error, 1)
	go func() { readDone <- w.pipeline(stdin) }()
	watchDone, watchEnded := make(chan struct{}), make(chan struct{})
	go func() { w.watch(watchDone); close(watchEnded) }()

	progress := time.NewTicker(w.opts.Progress)
	defer progress.Stop()
	var readErr error
	ended := false
	for !ended {
		select {
		case readErr = <-readDone:
			ended = true
		case <-w.stop:
			ended = true
		case <-ctx.Done():
			_ = w.em.Logf(airbyte.Info, "Stopping on a signal: reading no more input; waiting up to %s for the brokers to acknowledge what was sent, so that its states go out", w.opts.FlushTimeout)
			w.fail(failure.Transientf(context.Cause(ctx), "The sync was stopped by a signal before the end of its input"))
			ended = true
		case <-progress.C:
			n := w.records.Load()
			secs := time.Since(began).Seconds()
			_ = w.em.Logf(airbyte.Info, "Progress: %d records read (%.0f/s), %d states read, %d echoed", n, float64(n)/secs, w.states.Load(), w.tr.Stats().Emitted)
		}
	}
	if readErr != nil {
		w.fail(readErr)
	}
	if w.failure() == nil {
		// The end of the input: wait for every acknowledgement before closing,
		// since sarama fails the records it is still retrying when closed.
		w.awaitAcks(ctx)
	}

	// Flush what was sent, within a bound, so that the states it completes
	// still go out.
	flushed := make(chan struct{})
	go func() { w.closeSink(); close(flushed) }()
	flushFor := w.opts.FlushTimeout
	if w.quickClose.Load() {
		flushFor = time.Second
	}
	select {
	case <-flushed:
	case <-time.After(flushFor):
		w.fail(failure.Transientf(nil, "Keen's Kafka brokers did not acknowledge the last records within %s", w.opts.FlushTimeout))
	}

	close(watchDone)
	<-watchEnded
	st := w.tr.Stats()
	w.summary(time.Since(began), st)
	if err := w.failure(); err != nil {
		return err
	}
	if st.Held > 0 || st.Finished != st.Records {
		return failure.Systemf(nil, "%d states were held back after the sync although no error was reported (%d of %d records acknowledged)", st.Held, st.Finished, st.Records)
	}
	return w.em.Err()
}

// stallNotice is how long the brokers may acknowledge nothing, with records
// in flight, before the connector says it is waiting and checks whether
// they still accept its key.
const stallNotice = 5 * time.Second

// watch is the watchdog of acknowledgements: it logs when the brokers stop
// acknowledging and when they come back, fails the sync with a config_error
// when they now refuse the key or the certificate, and with a
// transient_error when they have acknowledged nothing for the delivery
// timeout.
func (w *writer) watch(done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var (
		last      = w.tr.Stats().Finished
		progress  = time.Now()
		waiting   bool
		diagnosed time.Time
	)
	// resumed reports whether acknowledgements moved since the last look.
	resumed := func(now time.Time) bool {
		st := w.tr.Stats()
		if st.Finished == last && st.Finished != st.Records {
			return false
		}
		if waiting {
			_ = w.em.Logf(airbyte.Info, "Keen's Kafka brokers acknowledge records again, after %s without", now.Sub(progress).Round(time.Second))
			waiting = false
		}
		last, progress = st.Finished, now
		return true
	}
	for {
		select {
		case <-done:
			resumed(time.Now())
			return
		case <-w.stop:
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
				st := w.tr.Stats()
				_ = w.em.Logf(airbyte.Warn, "Keen's Kafka brokers have acknowledged nothing for %s, with %d records in flight; waiting for them, up to %s", stalled.Round(time.Second), st.Records-st.Finished, w.cfg.DeliveryTimeout)
			}
			if now.Sub(diagnosed) >= 15*time.Second {
				diagnosed = now
				go func() {
					if err := w.sink.Diagnose(w.cfg); err != nil {
						w.quickClose.Store(true) // the brokers refuse us: nothing will flush
						w.fail(err)
					}
				}()
			}
			if stalled >= w.cfg.DeliveryTimeout {
				st := w.tr.Stats()
				w.quickClose.Store(true) // nothing will flush: do not wait for it
				w.fail(failure.Transientf(nil, "Keen's Kafka brokers acknowledged nothing for %s (delivery_timeout_seconds); %d records were not delivered", stalled.Round(time.Second), st.Records-st.Finished))
				return
			}
		}
	}
}

// awaitAcks returns once every record is finished, the sync fails, or the
// context ends.
func (w *writer) awaitAcks(ctx context.Context) {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if st := w.tr.Stats(); st.Finished == st.Records {
			return
		}
		select {
		case <-w.stop:
			return
		case <-ctx.Done():
			w.fail(failure.Transientf(context.Cause(ctx), "The sync was stopped by a signal while records were in flight"))
			return
		case <-tick.C:
		}
	}
}

// closeSink stops sends and flushes the producer.
func (w *writer) closeSink() {
	w.sendMu.Lock()
	w.closed = true
	w.sendMu.Unlock()
	w.sink.Close()
}

func (w *writer) summary(elapsed time.Duration, st checkpoint.Stats) {
	secs := max(elapsed.Seconds(), 1e-3)
	_ = w.em.Logf(airbyte.Info, "Sync summary: %d records read, %d acknowledged, %d states read, %d echoed, %.1fs (%.0f records/s)",
		st.Records, st.Finished, w.states.Load(), st.Emitted, elapsed.Seconds(), float64(st.Records)/secs)
	for _, p := range w.cat.Plans {
		line := fmt.Sprintf("Stream %q -> %q: %d records", p.Name(), p.Collection, p.Records.Load())
		if p.Cursor != nil {
			line += fmt.Sprintf("; keen.timestamp from the cursor for %d, from emitted_at for %d (cursor missing or not a time)", p.FromCursor.Load(), p.Fallbacks.Load())
		}
		if n := p.DroppedKeenKey.Load(); n > 0 {
			line += fmt.Sprintf("; %d %s of the source's keen objects dropped (Keen accepts only addons, location, uniqueness_token)", n, plural(n, "key", "keys"))
		}
		if n := p.Rejected.Load(); n > 0 {
			line += fmt.Sprintf("; %d oversized records skipped", n)
		}
		if c := w.conform.summary(p); c != "" {
			line += "; " + c
		}
		_ = w.em.Logf(airbyte.Info, "%s", line)
	}
}

func badInput(err error, line int) error {
	me, ok := errors.AsType[*message.Error](err)
	if !ok {
		return failure.Systemf(err, "Input line %d is not a valid Airbyte message", line)
	}
	me.Line = line
	return &failure.Error{Kind: failure.System, Stream: me.Stream, Cause: me,
		Message: fmt.Sprintf("Input line %d is not a valid Airbyte message: %s", line, me.Reason)}
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
