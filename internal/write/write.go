// Package write runs a sync from its start to its end: it loads the config
// and the catalog, opens the producer, runs the record pipeline and the
// brokers' watchdog, waits for the last acknowledgement, replaces the older
// generations of truncating streams' collections, closes the producer
// within a bound, and reports. It owns the lifecycle and every goroutine of
// a sync; the record path itself is package pipeline's.
//
// The states of a sync, and what moves it from one to the next:
//
//	opening ──▶ running ──input ends──▶ draining ──last ack──▶ replacing ──▶ closing ──▶ reporting
//	              │                        │                                    ▲
//	              └──────── stopping: the first failure or a signal ────────────┘
//
// Opening: config, catalog, producer, and the master key proven when a
// stream truncates; an error here returns at once, with nothing produced.
// Running: the pipeline reads and sends, the watchdog watches the
// acknowledgements, the owner (run) logs progress. Draining: the input
// ended; the tracker is sealed and its Drained channel says when the last
// record is acknowledged (no polling). Replacing: only then, only when
// nothing failed, and only for the truncating streams the platform reported
// COMPLETE (pipeline.Completion: the end of the input alone is no success),
// the events of their collections from other generations are deleted (see
// replaceGenerations); a sync that fails or is killed deletes nothing.
// Stopping: the first failure (the pipeline's, a producer error, the
// watchdog's) or a signal is recorded once, by fail,
// and cancels the run's context; the pipeline stops reading and returns,
// and so does the watchdog. Closing: the producer is closed once the
// pipeline has returned (so that no send can follow), flushing within
// FlushTimeout; acknowledgements that come meanwhile still release their
// states. Reporting: the tracker is stopped and failures are closed, so
// that nothing is written after run returns; the summary is logged and the
// first failure returned.
package write

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"destination-keen/internal/airbyte"
	"destination-keen/internal/bulk"
	"destination-keen/internal/catalog"
	"destination-keen/internal/checkpoint"
	"destination-keen/internal/config"
	"destination-keen/internal/connector"
	"destination-keen/internal/failure"
	"destination-keen/internal/keenapi"
	"destination-keen/internal/pipeline"
	"destination-keen/internal/sink"
	"destination-keen/internal/transport"
)

// Options are the knobs of a sync that are not in the user's config.
type Options struct {
	// Progress is the interval of progress logs after the first, which
	// comes after 5 s; default 30 s.
	Progress time.Duration
	// FlushTimeout bounds the final flush after a failure or a signal;
	// default 20 s.
	FlushTimeout time.Duration
	// RootCAs replaces the system trust store (tests only).
	RootCAs *x509.CertPool
	// GoroutineReport logs, at DEBUG after the sync, how many goroutines ran
	// at its start and at its end, once the producer's connections have wound
	// down (up to 2 s): for make soak, which checks that none is left. Off,
	// a sync never waits for that.
	GoroutineReport bool
}

// Run runs a sync: config and catalog first (no network before both are
// valid), then the brokers, then the deletes of truncating collections, then
// stdin until its end.
func Run(ctx context.Context, em *airbyte.Emitter, configPath, catalogPath string, stdin io.Reader, opts Options) error {
	cfg, err := config.Load(ctx, configPath)
	if err != nil {
		return err
	}
	em.Redact(cfg.APIKey.Reveal())
	connector.LogConfigWarnings(em, cfg)
	cat, err := catalog.Load(ctx, catalogPath, catalog.OptionsOf(cfg))
	if err != nil {
		return err
	}
	if opts.Progress <= 0 {
		opts.Progress = defaultProgress
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 20 * time.Second
	}
	logPlan(em, cfg, cat)
	if opts.GoroutineReport {
		defer reportGoroutines(em, runtime.NumGoroutine())
	}

	s := &syncRun{em: em, cat: cat, cfg: cfg, opts: opts, tracker: checkpoint.New(em.Line), refusals: map[refusalKey]int64{}}
	if err := s.open(ctx); err != nil {
		return err
	}
	if pct, restore := gcHeadroom(s.out.InFlightBytes(), os.Getenv); restore != nil {
		defer restore()
		em.Log().Info(fmt.Sprintf("Garbage collector target GOGC=%d while up to %d MiB of events await acknowledgement (set GOGC or GOMEMLIMIT to choose otherwise)", pct, s.out.InFlightBytes()>>20))
	}
	s.pipe = pipeline.New(cat, cfg, s.out, s.tracker, em)
	if err := s.checkTruncate(ctx); err != nil {
		s.out.Close()
		return err
	}
	return s.run(ctx, stdin)
}

// conn is the transport as a sync drives it: the pipeline's side, and
// Close, which sends what is left and waits for every outcome.
type conn interface {
	pipeline.Transport
	Close()
	InFlightBytes() int
}

// Events in flight make most of a sync's heap: with 16 MiB in flight to
// far brokers, 40-45 MB is live (GODEBUG=gctrace=1): the events, their
// envelopes and producer messages, the producer's batches. The collector's
// default target lets the heap grow to twice what is live before
// collecting; at half, GOGC=50, the peak RSS at +100 ms is about 85 MiB
// instead of about 100, at the same records/s, for twice as many
// collections (the README's performance section has the measurements). A
// sync with little in flight (one producer to near brokers) keeps the
// default: its heap is small, and collections would cost CPU where CPU is
// the limit.
const (
	headroomAbove = 8 << 20
	farGCPercent  = 50
)

// gcHeadroom sets the collector's target to farGCPercent when the
// transport holds more than headroomAbove bytes in flight and the operator
// set neither GOGC nor GOMEMLIMIT (getenv reads the environment); restore,
// nil when it changed nothing, puts the earlier target back.
func gcHeadroom(inFlight int, getenv func(string) string) (pct int, restore func()) {
	if inFlight <= headroomAbove || getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	old := debug.SetGCPercent(farGCPercent)
	return farGCPercent, func() { debug.SetGCPercent(old) }
}

// peer names who acknowledges events, in messages.
type peer struct{ long, short string }

var (
	kafkaPeer = peer{"Keen's Kafka brokers", "Keen's brokers"}
	httpsPeer = peer{"Keen's HTTPS API", "Keen"}
)

// open opens the transport the config names: Kafka's producers, or HTTPS
// requests (nothing then connects to Kafka).
func (s *syncRun) open(ctx context.Context) error {
	out := transport.Outcomes{Stored: s.acked, Refused: s.refused, Failed: s.failed}
	if s.cfg.Transport == config.HTTPS {
		api := s.api()
		api.MaxWait = s.cfg.DeliveryTimeout
		t, err := bulk.Open(ctx, api, out)
		if err != nil {
			return err
		}
		s.out, s.peer = t, httpsPeer
		s.diagnose = func() error {
			ctx, cancel := context.WithTimeout(context.Background(), diagnoseTimeout)
			defer cancel()
			return t.Diagnose(ctx)
		}
		s.em.Log().Info(fmt.Sprintf("Transport https: round trip to Keen's HTTPS API %s; %s", t.RoundTrip.Round(100*time.Microsecond), t.Describe()))
		return nil
	}
	so := sink.OptionsFor(s.cfg)
	so.RootCAs = s.opts.RootCAs
	so.Log = s.em.Log()
	k, err := sink.Open(ctx, s.cfg, so, out)
	if err != nil {
		return err
	}
	s.out, s.peer = k, kafkaPeer
	s.diagnose = func() error { return k.Diagnose(s.cfg) }
	s.em.Log().Info(fmt.Sprintf("Round trip to Keen's Kafka brokers: %s; %s", k.RoundTrip.Round(100*time.Microsecond), k.Describe()))
	if !k.Idempotent {
		s.em.Log().Warn("Producing without idempotence: if a batch is retried after the brokers stored it, its events appear twice in Keen")
	}
	return nil
}

// diagnoseTimeout bounds the watchdog's check of the key over HTTPS.
const diagnoseTimeout = 20 * time.Second

func logPlan(em *airbyte.Emitter, cfg *config.Config, cat *catalog.Catalog) {
	em.Log().Info(fmt.Sprintf("destination-keen %s: %s", connector.Version, cfg))
	for _, p := range cat.Plans {
		ts := "emitted_at"
		if p.TimestampFromCursor {
			ts = fmt.Sprintf("cursor %s (%s), else emitted_at", strings.Join(p.Cursor, "."), p.CursorKind)
		}
		named := ""
		if p.ObjectName != "" {
			named = fmt.Sprintf(" (the platform's destination_object_name %q)", p.ObjectName)
		}
		tokens := "keen.uniqueness_token from " + p.Token.Why
		if p.Token.Kind == catalog.TokenNone {
			tokens = "no keen.uniqueness_token " + noTokenReason(p)
		}
		em.Log().Info(fmt.Sprintf("Stream %q -> collection %q%s: %s; keen.timestamp from %s; %s", p.Name(), p.Collection, named, p.Reason, ts, tokens))
	}
	for _, warning := range cat.Warnings {
		em.Log().Warn(fmt.Sprintf("Namespaces are not part of collection names: %s", warning))
	}
}

// syncRun is one sync after opening.
type syncRun struct {
	em      *airbyte.Emitter
	cat     *catalog.Catalog
	cfg     *config.Config
	opts    Options
	tracker *checkpoint.Tracker
	pipe    *pipeline.Pipeline
	out     conn // the transport
	peer    peer // who acknowledges, for messages
	// diagnose makes a fresh connection to Keen (the brokers, or the HTTPS
	// API) and says whether it now refuses the key or the certificate (the
	// transport's Diagnose; a fake in the watchdog's tests).
	diagnose func() error

	mu         sync.Mutex
	err        error              // the first failure, under mu
	closed     bool               // under mu: failures are no longer recorded
	cancel     context.CancelFunc // cancels the run's context, on the first failure
	refusalsMu sync.Mutex
	refusals   map[refusalKey]int64 // Keen's refusals per stream and error name
	// noFlush: the watchdog found that nothing will be acknowledged, so the
	// final flush need not wait.
	noFlush atomic.Bool
}

// fail records the first failure of the sync and stops it. Failures that
// come after the sync has reported are dropped.
func (s *syncRun) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil && !s.closed {
		s.err = err
		if s.cancel != nil {
			s.cancel()
		}
	}
}

// firstFailure returns the failure that stopped the sync, or nil.
func (s *syncRun) firstFailure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// acked is the transport's callback for a stored record.
func (s *syncRun) acked(env *transport.Envelope) {
	if err := s.tracker.Done(env.Seq); err != nil {
		s.fail(failure.Systemf(err, "Cannot write to stdout"))
	}
}

// refusalKey is a stream (plan index) and the name of Keen's error.
type refusalKey struct {
	plan int
	name string
}

// refused is the transport's callback for an event Keen did not keep: with
// refused_records skip (the default), the record counts as rejected in its
// state and in the summary, with a WARN the first time per stream and
// error; with fail, the sync fails.
func (s *syncRun) refused(env *transport.Envelope, r transport.Refusal) {
	p := s.cat.Plans[env.Plan]
	desc := r.Description
	if len(desc) > 500 {
		desc = strings.ToValidUTF8(desc[:500], "") + "…"
	}
	if s.cfg.FailRefused {
		s.fail(&failure.Error{Kind: failure.System, Stream: p.Stream, Namespace: p.Namespace,
			Message: fmt.Sprintf("Keen refused an event of stream %q: %s: %s; refused_records is fail (skip counts such records in rejectedRecordCount and goes on)", p.Name(), r.Name, desc)})
		return
	}
	s.pipe.Counts(p).Refused.Add(1)
	s.refusalsMu.Lock()
	k := refusalKey{env.Plan, r.Name}
	s.refusals[k]++
	first := s.refusals[k] == 1
	s.refusalsMu.Unlock()
	if first {
		s.em.Log().Warn(fmt.Sprintf("Keen refused an event of stream %q: %s: %s. Such records are counted in rejectedRecordCount and the sync summary, and the sync goes on (refused_records: skip)", p.Name(), r.Name, desc))
	}
	if err := s.tracker.Refused(env.Seq, env.Plan); err != nil {
		s.fail(failure.Systemf(err, "Cannot write to stdout"))
	}
}

// failed is the transport's callback for a record it gave up on, with a
// classified error.
func (s *syncRun) failed(env *transport.Envelope, err error) {
	if errors.Is(err, transport.ErrTooLarge) && s.cfg.SkipOversized {
		// The brokers' limit is below ours. The record is left out like the
		// ones the connector finds too large itself, but the state it belongs
		// to may already have gone with its counts: the summary counts it.
		p := s.cat.Plans[env.Plan]
		s.pipe.Counts(p).Oversized.Add(1)
		s.em.Log().Warn(fmt.Sprintf("Keen's brokers refused a record of stream %q as too large (%d bytes); skipped", p.Name(), len(env.Buf)))
		if err := s.tracker.Done(env.Seq); err != nil {
			s.fail(failure.Systemf(err, "Cannot write to stdout"))
		}
		return
	}
	f := failure.As(err)
	if f.Stream != "" {
		f.Namespace = s.cat.Plans[env.Plan].Namespace
	}
	s.fail(f)
}

func (s *syncRun) api() *keenapi.Client {
	api := keenapi.New(s.cfg)
	api.Log = s.em.Log()
	if s.opts.RootCAs != nil {
		api.SetRootCAs(s.opts.RootCAs)
	}
	return api
}

// checkTruncate proves, before anything is produced, that the key may
// delete what truncating streams will replace: a key that is not the master
// key fails now, not after the sync has written its events.
func (s *syncRun) checkTruncate(ctx context.Context) error {
	for _, p := range s.cat.Plans {
		if p.Truncate {
			if err := s.api().CheckMasterKey(ctx); err != nil {
				if f, ok := errors.AsType[*failure.Error](err); ok {
					f.Message = fmt.Sprintf("Stream %q replaces collection %q, which needs the master key: %s", p.Name(), p.Collection, f.Message)
					f.Stream = p.Stream
				}
				return err
			}
			return nil
		}
	}
	return nil
}

// replaceGenerations ends every truncating stream that the platform
// reported COMPLETE and whose records were all acknowledged (run calls it
// only then): the events of its collection from any other generation (or
// from none: events written before generations) are deleted, with Keen's
// filtered delete. Every other truncating stream keeps its old events, and
// the log says why (pipeline.Completion). A delete that fails is a
// transient_error: the old events stay, and the next sync that ends well
// removes them.
func (s *syncRun) replaceGenerations(ctx context.Context) error {
	api := s.api()
	warnedSilence := false
	for _, p := range s.cat.Plans {
		if !p.Truncate {
			continue
		}
		st := s.pipe.Counts(p)
		if c := st.Completion(); c != pipeline.Completed {
			if !s.pipe.StatusesSeen() && !warnedSilence {
				warnedSilence = true
				s.em.Log().Warn("The platform sent no stream status in this sync. Airbyte platforms that report completion send a STREAM_STATUS COMPLETE for every stream when the source succeeds, and none when it fails: either the source failed, or this platform is too old to report completion. Overwrite and refresh streams keep their earlier events either way; on an old platform, upgrade Airbyte so that a successful sync replaces them")
			}
			n := st.Sent()
			s.em.Log().Warn(fmt.Sprintf("Stream %q did not complete: %s. The earlier events of collection %q are kept next to its %d new %s of generation %s; the next sync that completes replaces them", p.Name(), c.Why(), p.Collection, n, airbyte.Plural(n, "event", "events"), p.Generation))
			continue
		}
		began := time.Now()
		gen, err := strconv.ParseInt(p.Generation, 10, 64)
		if err != nil {
			return failure.Systemf(err, "The generation of stream %q is not a number", p.Name())
		}
		others := []keenapi.Filter{{PropertyName: catalog.GenerationProperty, Operator: "ne", PropertyValue: gen}}
		none := []keenapi.Filter{{PropertyName: catalog.GenerationProperty, Operator: "exists", PropertyValue: false}}
		existed := false
		for _, filters := range [][]keenapi.Filter{others, none} {
			ok, err := api.DeleteEvents(ctx, p.Collection, filters)
			if err != nil {
				f := failure.As(err)
				return &failure.Error{Kind: failure.Transient, Stream: p.Stream, Namespace: p.Namespace, Cause: err,
					Message: fmt.Sprintf("Stream %q wrote generation %s of collection %q, but its earlier events could not be deleted (%s); they are still there, next to the new ones, and the next sync that ends well removes them", p.Name(), p.Generation, p.Collection, f.Message)}
			}
			existed = existed || ok
		}
		if !existed {
			s.em.Log().Info(fmt.Sprintf("Collection %q of stream %q (%s) does not exist in Keen: nothing to delete", p.Collection, p.Name(), p.Reason))
			continue
		}
		s.em.Log().Info(fmt.Sprintf("Stream %q (%s) ended: deleted the events of collection %q not of generation %s (%s = %s) in %s", p.Name(), p.Reason, p.Collection, p.Generation, catalog.GenerationProperty, p.Generation, time.Since(began).Round(time.Millisecond)))
	}
	return nil
}

// run is the owner of the running sync: it starts the pipeline and the
// watchdog, moves the sync through its states (see the package comment),
// and returns only once both have ended.
func (s *syncRun) run(parent context.Context, stdin io.Reader) error {
	began := time.Now()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()

	var wg sync.WaitGroup
	piped := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		piped <- s.pipe.Run(ctx, stdin)
	}()
	go func() {
		defer wg.Done()
		s.watch(ctx)
	}()

	// running
	progress := time.NewTimer(min(firstProgress, s.opts.Progress))
	defer progress.Stop()
	last := s.snap(began)
	pipelineDone := false
running:
	for {
		select {
		case err := <-piped:
			pipelineDone = true
			if err != nil {
				s.fail(err)
			} else if ctx.Err() == nil {
				s.tracker.Seal() // draining
			}
			break running
		case <-ctx.Done():
			break running
		case now := <-progress.C:
			cur := s.snap(now)
			s.em.Log().Info(progressLine(last, cur, s.peer.short))
			last = cur
			progress.Reset(s.opts.Progress)
		}
	}
	if parent.Err() != nil && s.firstFailure() == nil {
		s.em.Log().Info(fmt.Sprintf("Stopping on a signal: reading no more input; waiting up to %s for the brokers to acknowledge what was sent, so that its states go out", s.opts.FlushTimeout))
		s.fail(failure.Transientf(context.Cause(parent), "The sync was stopped by a signal before the end of its input"))
	}

	// draining: sarama fails the records it is still retrying when closed,
	// so the end of the input waits for every acknowledgement first.
	if s.firstFailure() == nil {
		select {
		case <-s.tracker.Drained():
			// Every record is in Keen: truncating streams replace their
			// collections' older generations now, and not a moment before.
			if err := s.replaceGenerations(parent); err != nil {
				s.fail(err)
			}
		case <-ctx.Done():
			if parent.Err() != nil {
				s.fail(failure.Transientf(context.Cause(parent), "The sync was stopped by a signal while records were in flight"))
			}
		}
	}

	// closing: stop the pipeline and the watchdog; close the producer once
	// nothing can send to it any more.
	cancel()
	if !pipelineDone {
		<-piped
	}
	flushed := make(chan struct{})
	go func() {
		// sarama's close cannot be cancelled: when the flush outlasts its
		// bound, this goroutine ends on its own, and the tracker, stopped
		// below, writes nothing more.
		s.out.Close()
		close(flushed)
	}()
	flushFor := s.opts.FlushTimeout
	if s.noFlush.Load() {
		flushFor = time.Second
	}
	select {
	case <-flushed:
	case <-time.After(flushFor):
		s.fail(failure.Transientf(nil, "%s did not acknowledge the last records within %s", s.peer.long, s.opts.FlushTimeout))
	}
	wg.Wait()

	// reporting
	s.tracker.Stop()
	s.mu.Lock()
	s.closed = true
	err := s.err
	s.mu.Unlock()
	st := s.tracker.Stats()
	s.summary(time.Since(began), st)
	if err != nil {
		return err
	}
	if st.Held > 0 || st.Finished != st.Records {
		return failure.Systemf(nil, "%d states were held back after the sync although no error was reported (%d of %d records acknowledged)", st.Held, st.Finished, st.Records)
	}
	return s.em.Err()
}

func (s *syncRun) summary(elapsed time.Duration, st checkpoint.Stats) {
	secs := max(elapsed.Seconds(), 1e-3)
	read, states := s.pipe.Progress()
	skipped := s.pipe.Skipped()
	peak := ""
	if n, ok := peakMemory(); ok {
		peak = fmt.Sprintf(", peak memory %d MiB", n>>20)
	}
	refused := int64(0)
	s.refusalsMu.Lock()
	for _, n := range s.refusals {
		refused += n
	}
	s.refusalsMu.Unlock()
	byKeen := ""
	if s.peer == httpsPeer {
		byKeen = fmt.Sprintf(", %d refused by Keen", refused)
	}
	s.em.Log().Info(fmt.Sprintf("Sync summary: %d %s read, %d acknowledged by %s, %d skipped (oversized or breaking Keen's rules)%s, %d %s read, %d echoed, %.1fs (%.0f records/s)%s",
		read, airbyte.Plural(read, "record", "records"), int64(st.Finished)-skipped-refused, s.peer.short, skipped, byKeen, states, airbyte.Plural(states, "state", "states"), st.Emitted, elapsed.Seconds(), float64(read)/secs, peak))
	for _, p := range s.cat.Plans {
		c := s.pipe.Counts(p)
		n := c.Records.Load()
		line := fmt.Sprintf("Stream %q -> %q: %d %s", p.Name(), p.Collection, n, airbyte.Plural(n, "record", "records"))
		if p.TimestampFromCursor {
			line += fmt.Sprintf("; keen.timestamp from the cursor for %d, from emitted_at for %d (cursor missing or not a time)", c.FromCursor.Load(), c.Fallbacks.Load())
		}
		line += "; " + tokenTally(p, c)
		if n := c.DroppedKeenKeys.Load(); n > 0 {
			line += fmt.Sprintf("; %d %s of the source's keen objects dropped (Keen accepts only addons, location, uniqueness_token)", n, airbyte.Plural(n, "key", "keys"))
		}
		if n := c.Oversized.Load(); n > 0 {
			line += fmt.Sprintf("; %d oversized records skipped", n)
		}
		if n := c.Refused.Load(); n > 0 {
			line += fmt.Sprintf("; %d refused by Keen (%s)", n, s.refusalNames(p.Index))
		}
		if conform := s.pipe.ConformSummary(p); conform != "" {
			line += "; " + conform
		}
		s.em.Log().Info(line)
	}
}

// refusalNames lists Keen's errors for a stream's refused records, with
// their counts, most frequent first.
func (s *syncRun) refusalNames(plan int) string {
	type named struct {
		name string
		n    int64
	}
	var ns []named
	s.refusalsMu.Lock()
	for k, n := range s.refusals {
		if k.plan == plan {
			ns = append(ns, named{k.name, n})
		}
	}
	s.refusalsMu.Unlock()
	sort.Slice(ns, func(i, j int) bool { return ns[i].n > ns[j].n || ns[i].n == ns[j].n && ns[i].name < ns[j].name })
	parts := make([]string, len(ns))
	for i, x := range ns {
		parts[i] = fmt.Sprintf("%s: %d", x.name, x.n)
	}
	return strings.Join(parts, ", ")
}

// noTokenReason is why a stream's events get no token of ours, in
// parentheses: the rule's Why without its leading "none".
func noTokenReason(p *catalog.Plan) string { return strings.TrimPrefix(p.Token.Why, "none ") }

// tokenTally says, for the summary, how many of the stream's events carry a
// uniqueness token derived here, the source's own, or none.
func tokenTally(p *catalog.Plan, c *pipeline.Counts) string {
	ours, theirs := c.Tokens.Load(), c.SourceTokens.Load()
	none := max(c.Sent()-ours-theirs, 0)
	if p.Token.Kind == catalog.TokenNone {
		reason := noTokenReason(p)
		if theirs == 0 {
			return "no uniqueness tokens " + reason
		}
		return fmt.Sprintf("uniqueness tokens: the source's own for %d, none for %d %s", theirs, none, reason)
	}
	line := fmt.Sprintf("uniqueness tokens from %s for %d", p.Token.Why, ours)
	if theirs > 0 {
		line += fmt.Sprintf(", the source's own for %d", theirs)
	}
	if none > 0 {
		line += fmt.Sprintf(", none for %d (a key value, or the cursor and the sync_id, missing)", none)
	}
	return line
}

// reportGoroutines logs the goroutine count at the start and, once the
// producer's goroutines have ended (within 2 s), at the end.
func reportGoroutines(em *airbyte.Emitter, start int) {
	end := runtime.NumGoroutine()
	for deadline := time.Now().Add(2 * time.Second); end > start && time.Now().Before(deadline); end = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	em.Log().Debug(fmt.Sprintf("Goroutines: %d at start, %d at the end", start, end))
}

// peakMemory returns the process's peak resident memory so far, in bytes,
// where the system says it (Linux: VmHWM in /proc/self/status, the high
// water mark of this program's memory, not of whatever ran before it).
func peakMemory() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kib); err == nil {
				return kib << 10, true
			}
		}
	}
	return 0, false
}
