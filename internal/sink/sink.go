// Package sink owns the Kafka side: sarama async producers to Keen's Kafka
// Inbound Cluster (SASL/PLAIN over verified TLS, acks=all, idempotent where
// the brokers allow it, retries with backoff), the pooled envelopes records
// travel in, and the classification of Kafka errors for the user. It reports
// each acknowledgement and each failure to its caller and knows nothing of
// Airbyte states.
//
// Across the internet a round trip to the brokers costs 20-100 ms or more,
// and an idempotent sarama producer has one request in flight per broker
// and one batch (at most the brokers' 1 MB message limit) per partition: a
// producer then moves at most a batch per partition per round trip. So the
// sink runs several producers ("lanes"), each with its own client,
// connections and producer id, so each keeps its own sequence numbers and
// its retries stay deduplicated by the brokers. How many is measured, not
// guessed: the probe that proves the config times a few request round
// trips, and AutoLanes turns the shortest into a count (or the user's
// kafka_producers sets it). Each lane may hold up to its share of bytes
// in flight (BytesInFlightPerLane): an event's bytes count from Send until
// its acknowledgement or failure. Events go to the current lane while its
// share has room, and to the next with room when it is spent, so near
// brokers keep one lane busy and far ones spread the load over all;
// Send waits while every share is spent. Acknowledgements come back in any
// order, which the caller's tracker allows for (one producer acks
// partitions out of order too).
package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"

	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/transport"
)

// KafkaVersion is the protocol version the producer speaks: 2.1, the first
// with zstd, and old enough for any cluster Keen runs.
var KafkaVersion = sarama.V2_1_0_0

// DefaultMaxMessageBytes is the largest event sent, matching Kafka's default
// message.max.bytes (1 MB).
const DefaultMaxMessageBytes = 1_000_000

// Compressions are the accepted values of the compression option.
var Compressions = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"gzip":   sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

// MaxAutoLanes is the most producers a sink picks by itself: enough to
// keep a 100 ms link full (see the package comment and the README's
// figures). It picks one per LaneRoundTrip of the round trip measured at
// the start, at least one: near brokers need one, and more would only
// cost CPU (measured: 4 lanes at 0 ms moved 15-20% fewer records/s).
const (
	MaxAutoLanes  = 4
	LaneRoundTrip = 10 * time.Millisecond
)

// BytesInFlightPerLane caps each lane's bytes of events sent and not yet
// acknowledged: 16 MiB for four lanes.
const BytesInFlightPerLane = 4 << 20

// AutoLanes is the number of lanes for a measured round trip.
func AutoLanes(rtt time.Duration) int {
	return min(max(int((rtt+LaneRoundTrip-1)/LaneRoundTrip), 1), MaxAutoLanes)
}

// Options tune the producer; zero values take the defaults, each written
// once, in defaults. OptionsFor makes them from a config.
type Options struct {
	// Lanes is the number of producers, each with its own connections;
	// 0 picks AutoLanes of the round trip measured at the start.
	Lanes int
	// LaneBytes caps each lane's bytes of events sent and not yet
	// acknowledged; Send waits while every lane's cap is reached. Default
	// BytesInFlightPerLane.
	LaneBytes int
	// Compression is a key of Compressions; default "lz4", the Java
	// connector's and Keen's suggestion (fast, and JSON compresses well).
	Compression string
	// MaxMessageBytes is the largest event sent; default
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// Patience bounds how long the producer keeps retrying one batch while
	// the brokers are unreachable or failing with retriable errors; default
	// 2 minutes. A sync sets it past its delivery timeout (see OptionsFor).
	Patience time.Duration
	// ConnectTimeout bounds the first connection (metadata) attempt; default
	// 20 seconds, several round trips of TLS and SASL to far brokers.
	ConnectTimeout time.Duration
	// RootCAs replaces the system trust store (tests only).
	RootCAs *x509.CertPool
	// ClientID names the connector to the brokers; default
	// "destination-keen".
	ClientID string
	// Log takes the warnings of the sink (a dead seed, a refused
	// idempotence); default none.
	Log *slog.Logger
}

// OptionsFor returns the options a sync's producer takes from its config:
// compression, producers, and a patience 30 s past the delivery timeout, so
// that sarama's own retries outlast the sync's watchdog, which enforces
// delivery_timeout_seconds with a clearer message. The rest take their
// defaults; callers add RootCAs and Log.
func OptionsFor(cfg *config.Config) Options {
	o := Options{Compression: cfg.Compression, Lanes: cfg.Producers, Patience: cfg.DeliveryTimeout + 30*time.Second}
	o.defaults()
	return o
}

func (o *Options) defaults() {
	if o.LaneBytes <= 0 {
		o.LaneBytes = BytesInFlightPerLane
	}
	if o.Compression == "" {
		o.Compression = "lz4"
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.Patience <= 0 {
		o.Patience = 2 * time.Minute
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 20 * time.Second
	}
	if o.ClientID == "" {
		o.ClientID = "destination-keen"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

var nilMetrics sync.Once

// SaramaConfig is the producer config the sink uses, for tools that measure
// sarama alone (the benchmark's floor).
func SaramaConfig(cfg *config.Config, o Options, idempotent bool) (*sarama.Config, error) {
	o.defaults()
	return saramaConfig(cfg, &o, idempotent)
}

// saramaConfig builds the producer config. Idempotence needs one request in
// flight per broker, which the batch sizes below make up for.
func saramaConfig(cfg *config.Config, o *Options, idempotent bool) (*sarama.Config, error) {
	nilMetrics.Do(func() { metrics.UseNilMetrics = true })
	codec, ok := Compressions[o.Compression]
	if !ok {
		return nil, fmt.Errorf("unknown compression %q", o.Compression)
	}
	c := sarama.NewConfig()
	c.Version = KafkaVersion
	c.ClientID = o.ClientID
	c.Net.TLS.Enable = true
	c.Net.TLS.Config = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs}
	c.Net.SASL.Enable = true
	c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	c.Net.SASL.Version = sarama.SASLHandshakeV1
	c.Net.SASL.Handshake = true
	c.Net.SASL.User = cfg.ProjectID
	c.Net.SASL.Password = cfg.APIKey.Reveal()
	c.Net.DialTimeout = 10 * time.Second
	c.Net.ReadTimeout = 30 * time.Second
	c.Net.WriteTimeout = 30 * time.Second
	c.Metadata.Full = false
	// Metadata refreshes are what a producer does while every broker is
	// down; sarama fails the waiting records when they give up, so they get
	// the same patience as produce retries.
	// The first retry comes soon: a collection's topic is created by the
	// first metadata request that names it, and its leader is known a
	// moment later.
	metaBackoff := func(retries, _ int) time.Duration {
		return min(50*time.Millisecond<<min(retries, 7), 5*time.Second)
	}
	c.Metadata.Retry.BackoffFunc = metaBackoff
	c.Metadata.Retry.Max = retriesWithin(o.Patience, metaBackoff)
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Timeout = 10 * time.Second
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Compression = codec
	c.Producer.MaxMessageBytes = o.MaxMessageBytes + 1024 // the check is ours; leave sarama the overhead
	c.Producer.Flush.Bytes = 512 << 10
	c.Producer.Flush.Frequency = 5 * time.Millisecond
	// Queues of 4096 events a stage cost less CPU per record than 1024;
	// a lane's bytes in flight are capped anyway (Options.LaneBytes).
	c.ChannelBufferSize = 4096
	// Retries: exponential from 100 ms to 5 s, as many as fit in Patience.
	backoff := func(retries, _ int) time.Duration {
		d := 100 * time.Millisecond << min(retries, 6)
		return min(d, 5*time.Second)
	}
	c.Producer.Retry.BackoffFunc = backoff
	c.Producer.Retry.Max = retriesWithin(o.Patience, backoff)
	if idempotent {
		c.Producer.Idempotent = true
		c.Net.MaxOpenRequests = 1
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("producer config: %w", err)
	}
	return c, nil
}

// retriesWithin counts the retries whose backoffs add up to at most d.
func retriesWithin(d time.Duration, backoff func(int, int) time.Duration) int {
	n := 0
	for total := time.Duration(0); ; n++ {
		total += backoff(n, 0)
		if total > d {
			return max(n, 1)
		}
	}
}

// kafkaMsg is the sink's part of an envelope (its Carrier): the producer
// message, made once with the envelope and reused with it.
type kafkaMsg struct {
	msg  sarama.ProducerMessage
	env  *transport.Envelope
	lane int // the lane it went to
}

// Encode and Length make the message its own sarama.Encoder, so that
// sending allocates nothing per record.
func (k *kafkaMsg) Encode() ([]byte, error) { return k.env.Buf, nil }

// Length is the event's size.
func (k *kafkaMsg) Length() int { return len(k.env.Buf) }

// Sink is a set of open producers.
type Sink struct {
	lanes      []lane
	opts       Options
	Idempotent bool
	// RoundTrip is one request's round trip to a broker, measured at the
	// start.
	RoundTrip time.Duration
	pool      sync.Pool
	loops     sync.WaitGroup
	budget    budget
	cur       int // the sender's own: the lane that takes the next event
}

// lane is one producer with its own client.
type lane struct {
	client   sarama.Client
	producer sarama.AsyncProducer
}

// Open connects to the brokers and starts the producers. An acknowledged
// envelope is reported to out.Stored, a failed one to out.Failed with its
// error classified (Classify), from the producers' goroutines; the envelope
// is recycled after they return. The sink never reports a refusal: Kafka's
// acknowledgement says the brokers stored the event, not that Keen kept it.
func Open(ctx context.Context, cfg *config.Config, o Options, out transport.Outcomes) (*Sink, error) {
	o.defaults()
	s := &Sink{}
	s.pool.New = func() any {
		env := &transport.Envelope{}
		env.Carrier = &kafkaMsg{env: env}
		return env
	}

	// One connection proves the config and measures the round trip while
	// the lanes connect, each a few round trips to far brokers: the most
	// that may be kept, when the count is left to the round trip. A refused
	// key or certificate fails at the probe at once; the lanes, which would
	// fail too, are closed when they give up.
	sc, err := saramaConfig(cfg, &o, false)
	if err != nil {
		return nil, failure.Configf(err, "The producer cannot be configured")
	}
	n := o.Lanes
	if n <= 0 {
		n = MaxAutoLanes
	}
	type connected struct {
		lanes []lane
		err   error
	}
	lanesCh := make(chan connected, 1)
	go func(o Options) {
		lanes, err := connectLanes(ctx, cfg, cfg.Brokers, o, true, n)
		lanesCh <- connected{lanes, err}
	}(o)
	seeds, err := probe(ctx, cfg.Brokers, sc, o.ConnectTimeout)
	if err != nil {
		go func() { closeLanes((<-lanesCh).lanes) }()
		return nil, err
	}
	seeds.warn(o.Log)
	s.RoundTrip = seeds.RoundTrip
	if o.Lanes <= 0 {
		o.Lanes = AutoLanes(seeds.RoundTrip)
	}
	s.opts = o
	var r connected
	if len(seeds.Dead) == 0 {
		r = <-lanesCh
	} else {
		// A client takes its first seed at random and may keep asking a
		// dead one for its producer id: the lanes connect again through
		// the seeds that answered.
		go func() { closeLanes((<-lanesCh).lanes) }()
		r.lanes, r.err = connectLanes(ctx, cfg, seeds.Live, o, true, n)
	}
	s.Idempotent = true
	if r.err != nil && refusedIdempotence(r.err) {
		o.Log.Warn(fmt.Sprintf("The brokers refused the idempotent producer (%v); continuing without it: a retried batch may then be written twice", r.err))
		s.Idempotent = false
		r.lanes, r.err = connectLanes(ctx, cfg, seeds.Live, o, false, o.Lanes)
	}
	if r.err != nil {
		return nil, r.err
	}
	closeLanes(r.lanes[o.Lanes:])
	s.lanes = r.lanes[:o.Lanes]
	s.budget = budget{limit: int64(o.LaneBytes), used: make([]int64, o.Lanes)}
	for _, l := range s.lanes {
		s.loops.Add(2)
		go func() {
			defer s.loops.Done()
			for m := range l.producer.Successes() {
				env := m.Metadata.(*kafkaMsg).env
				out.Stored(env)
				s.put(env)
			}
		}()
		go func() {
			defer s.loops.Done()
			for pe := range l.producer.Errors() {
				env := pe.Msg.Metadata.(*kafkaMsg).env
				out.Failed(env, Classify(pe.Err, env.Collection, env.Stream, cfg.Brokers))
				s.put(env)
			}
		}()
	}
	return s, nil
}

// connectLanes opens n lanes at once; on any failure it closes those that
// opened and returns the first lane's error, or else another's.
func connectLanes(ctx context.Context, cfg *config.Config, brokers []string, o Options, idempotent bool, n int) ([]lane, error) {
	lanes := make([]lane, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range lanes {
		wg.Go(func() { lanes[i], errs[i] = connect(ctx, cfg, brokers, o, idempotent) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			closeLanes(lanes)
			return nil, err
		}
	}
	return lanes, nil
}

// closeLanes closes lanes that have sent nothing.
func closeLanes(lanes []lane) {
	for _, l := range lanes {
		if l.producer != nil {
			l.producer.AsyncClose()
			for range l.producer.Successes() {
			}
			_ = l.client.Close()
		}
	}
}

// connect opens one lane through brokers.
func connect(ctx context.Context, cfg *config.Config, brokers []string, o Options, idempotent bool) (lane, error) {
	sc, err := saramaConfig(cfg, &o, idempotent)
	if err != nil {
		return lane{}, failure.Configf(err, "The producer cannot be configured")
	}
	c, err := dial(ctx, brokers, sc, o.ConnectTimeout)
	if err != nil {
		return lane{}, err
	}
	p, err := sarama.NewAsyncProducerFromClient(c)
	if err != nil {
		c.Close()
		if idempotent && refusedIdempotenceRaw(err) {
			return lane{}, &idempotenceRefused{err}
		}
		return lane{}, Classify(err, "", "", brokers)
	}
	return lane{c, p}, nil
}

// probe runs Probe within timeout and ctx: a rejected key or an untrusted
// certificate shows at once, where a client would retry every broker.
func probe(ctx context.Context, brokers []string, sc *sarama.Config, timeout time.Duration) (Seeds, error) {
	return within(ctx, brokers, timeout, func() (Seeds, error) { return Probe(brokers, sc) }, nil)
}

// dial opens a client within timeout and ctx.
func dial(ctx context.Context, brokers []string, sc *sarama.Config, timeout time.Duration) (sarama.Client, error) {
	return within(ctx, brokers, timeout, func() (sarama.Client, error) { return sarama.NewClient(brokers, sc) },
		func(c sarama.Client) { _ = c.Close() })
}

// within runs open within timeout and ctx. sarama's dials cannot be
// cancelled: when within gives up first, the attempt ends on its own within
// the dial timeout, and what it opened, if anything, goes to release.
func within[T any](ctx context.Context, brokers []string, timeout time.Duration, open func() (T, error), release func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := open()
		ch <- result{v, err}
	}()
	abandon := func() {
		go func() {
			if r := <-ch; r.err == nil && release != nil {
				release(r.v)
			}
		}()
	}
	var zero T
	unreachable := "Cannot reach Keen's Kafka brokers (" + strings.Join(brokers, ",") + ")"
	select {
	case r := <-ch:
		if r.err != nil {
			return zero, Classify(r.err, "", "", brokers)
		}
		return r.v, nil
	case <-time.After(timeout):
		abandon()
		return zero, failure.Transientf(fmt.Errorf("no answer within %s", timeout), "%s", unreachable)
	case <-ctx.Done():
		abandon()
		return zero, failure.Transientf(ctx.Err(), "%s", unreachable)
	}
}

// Seeds is what probing the bootstrap servers found.
type Seeds struct {
	// RoundTrip is the shortest request round trip measured on a seed.
	RoundTrip time.Duration
	Live      []string   // the seeds that took a connection, in the order given
	Dead      []DeadSeed // the others
}

// DeadSeed is a bootstrap server that could not be reached, and why.
type DeadSeed struct {
	Addr string
	Err  error
}

// warn logs each dead seed.
func (s Seeds) warn(log *slog.Logger) {
	for _, d := range s.Dead {
		log.Warn(fmt.Sprintf("Kafka bootstrap server %s cannot be reached (%v); connecting through %s", d.Addr, d.Err, strings.Join(s.Live, ",")))
	}
}

// seedGrace is how long the other seeds may take to answer once one has:
// a seed that blackholes connections must not hold up a sync that another
// serves.
var seedGrace = 5 * time.Second

// Probe opens one connection (TLS, SASL, API versions) to every seed at
// once, times one request round trip on each that answers, and closes them.
// It fails when the key or the certificate is refused (at once), or when no
// seed can be reached; a seed that cannot be reached while another can is
// in Seeds.Dead: one broker down must not stop a sync.
func Probe(brokers []string, sc *sarama.Config) (Seeds, error) {
	type answer struct {
		i   int
		rtt time.Duration
		err error
	}
	answers := make(chan answer, len(brokers))
	for i, addr := range brokers {
		go func() {
			rtt, err := probeOne(addr, sc)
			answers <- answer{i, rtt, err}
		}()
	}
	errs := make([]error, len(brokers))
	live := make([]bool, len(brokers))
	var rtts []time.Duration
	var grace <-chan time.Time
collect:
	for range brokers {
		var a answer
		select {
		case a = <-answers:
		case <-grace:
			break collect
		}
		if a.err != nil {
			if errors.Is(a.err, sarama.ErrSASLAuthenticationFailed) || failure.IsTLSTrust(a.err) {
				return Seeds{}, a.err
			}
			errs[a.i] = a.err
			continue
		}
		live[a.i] = true
		if a.rtt > 0 {
			rtts = append(rtts, a.rtt)
		}
		if grace == nil {
			grace = time.After(seedGrace)
		}
	}
	for i := range errs {
		if !live[i] && errs[i] == nil {
			errs[i] = fmt.Errorf("no answer within %s of another seed's", seedGrace)
		}
	}
	var s Seeds
	for i, addr := range brokers {
		if live[i] {
			s.Live = append(s.Live, addr)
		} else {
			s.Dead = append(s.Dead, DeadSeed{addr, errs[i]})
		}
	}
	if len(s.Live) == 0 {
		if !slices.ContainsFunc(errs, func(err error) bool { _, ok := errors.AsType[*notKafka](err); return !ok }) {
			return Seeds{}, failure.Configf(errors.Join(errs...), "kafka_bootstrap_servers: %s took a connection but answered not as a Kafka broker; give the host:port of Keen's Kafka Inbound Cluster (port 9092), not an HTTPS or other address", strings.Join(brokers, ","))
		}
		return Seeds{}, errors.Join(errs...)
	}
	if len(rtts) > 0 {
		s.RoundTrip = slices.Min(rtts)
	}
	return s, nil
}

// probeReadTimeout bounds the wait for a seed's first answer, once TLS is
// up: a Kafka broker answers at once, even across the internet, and a
// server of another protocol (an HTTPS port) waits for a request of its own
// that never comes.
const probeReadTimeout = 3 * time.Second

// notKafka is a seed that took a connection and then answered not as a
// Kafka broker: it closed it, sent what no Kafka broker sends, spoke no
// TLS, or said nothing to the first request.
type notKafka struct{ error }

func (e *notKafka) Unwrap() error { return e.error }

// probeOne opens one connection to addr, times one request's round trip
// on it (the connection is warm: TLS and SASL took several), and closes it.
// A broker that does not answer that request counts as near (0).
func probeOne(addr string, sc *sarama.Config) (time.Duration, error) {
	c := *sc
	c.Net.ReadTimeout = min(c.Net.ReadTimeout, probeReadTimeout)
	c.ApiVersionsRequest = false // SASL's handshake first: one wait, not three, on a server that is not Kafka
	b := sarama.NewBroker(addr)
	if err := b.Open(&c); err != nil {
		return 0, err
	}
	defer func() { _ = b.Close() }()
	if ok, err := b.Connected(); !ok {
		var oe *net.OpError
		var rhe tls.RecordHeaderError
		var pde sarama.PacketDecodingError
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &rhe) || errors.As(err, &pde) ||
			errors.As(err, &oe) && oe.Op == "read" && oe.Timeout() {
			return 0, &notKafka{err}
		}
		return 0, err
	}
	began := time.Now()
	if _, err := b.ApiVersions(&sarama.ApiVersionsRequest{}); err != nil {
		return 0, nil
	}
	return time.Since(began), nil
}

type idempotenceRefused struct{ error }

func (e *idempotenceRefused) Unwrap() error { return e.error }

func refusedIdempotence(err error) bool {
	_, ok := errors.AsType[*idempotenceRefused](err)
	return ok
}

// refusedIdempotenceRaw: the brokers answered InitProducerId with an error
// (an ACL without IdempotentWrite, or brokers without the API).
func refusedIdempotenceRaw(err error) bool {
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		switch kerr {
		case sarama.ErrClusterAuthorizationFailed, sarama.ErrTransactionalIDAuthorizationFailed,
			sarama.ErrUnsupportedVersion, sarama.ErrUnsupportedForMessageFormat, sarama.ErrInvalidRequest:
			return true
		}
	}
	return false
}

// Get returns an empty envelope.
func (s *Sink) Get() *transport.Envelope { return s.pool.Get().(*transport.Envelope) }

// put releases e's bytes from its lane's share and recycles it.
func (s *Sink) put(e *transport.Envelope) {
	k := e.Carrier.(*kafkaMsg)
	s.budget.release(k.lane, int64(len(e.Buf)))
	if cap(e.Buf) > 1<<20 {
		return // let a huge buffer go
	}
	k.msg, k.lane = sarama.ProducerMessage{}, 0
	e.Buf, e.Seq, e.Stream, e.Plan, e.Collection = e.Buf[:0], 0, "", 0, ""
	s.pool.Put(e)
}

// Send hands e, an event for its collection, to a lane: the current one
// while its share of bytes in flight has room, else the next that has. It
// waits while no share has room or the lane's queue is full, and returns
// false, e not sent, when ctx ends first. One goroutine sends.
func (s *Sink) Send(ctx context.Context, e *transport.Envelope) bool {
	n := int64(len(e.Buf))
	k, ok := s.budget.acquire(ctx, s.cur, n)
	if !ok {
		return false
	}
	m := e.Carrier.(*kafkaMsg)
	s.cur, m.lane = k, k
	m.msg = sarama.ProducerMessage{Topic: e.Collection, Value: m, Metadata: m}
	in := s.lanes[k].producer.Input()
	select { // the common case, without a two-way select
	case in <- &m.msg:
		return true
	default:
	}
	select {
	case in <- &m.msg:
		return true
	case <-ctx.Done():
		s.budget.release(k, n)
		return false
	}
}

// Describe says how many producers run and what they may hold, for the log.
func (s *Sink) Describe() string {
	return fmt.Sprintf("%d producer(s), each with up to %d MiB of events awaiting acknowledgement", len(s.lanes), s.opts.LaneBytes>>20)
}

// InFlightBytes is the most bytes of events the sink holds awaiting their
// outcome: every lane's share.
func (s *Sink) InFlightBytes() int { return len(s.lanes) * s.opts.LaneBytes }

// MaxMessageBytes is the largest event the sink sends.
func (s *Sink) MaxMessageBytes() int { return s.opts.MaxMessageBytes }

// Close flushes what was sent, waits for every acknowledgement or failure
// to be reported, and disconnects. No Send may follow.
func (s *Sink) Close() {
	for _, l := range s.lanes {
		l.producer.AsyncClose()
	}
	s.loops.Wait()
	for _, l := range s.lanes {
		_ = l.client.Close()
	}
}

// budget counts each lane's bytes in flight against a limit. One
// goroutine acquires; any may release.
type budget struct {
	mu    sync.Mutex
	used  []int64 // per lane
	limit int64
	wake  chan struct{} // set while the sender waits; closed to wake it
}

// acquire takes n bytes from the first lane from `from` on whose share
// they fit, waiting while none has room; false when ctx ends first. A lane
// with nothing in flight takes any event, however large.
func (b *budget) acquire(ctx context.Context, from int, n int64) (int, bool) {
	b.mu.Lock()
	for {
		for i := range b.used {
			k := (from + i) % len(b.used)
			if b.used[k] == 0 || b.used[k]+n <= b.limit {
				b.used[k] += n
				b.mu.Unlock()
				return k, true
			}
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, false
		}
		b.mu.Lock()
	}
}

// release gives n bytes back to lane k. A waiting sender is woken once a
// quarter of the lane's share is free, not for every acknowledgement.
func (b *budget) release(k int, n int64) {
	b.mu.Lock()
	b.used[k] -= n
	if b.wake != nil && b.used[k] <= b.limit-b.limit/4 {
		close(b.wake)
		b.wake = nil
	}
	b.mu.Unlock()
}

// Classify turns a Kafka error into a classified failure naming what the
// user must fix. topic and stream may be empty.
func Classify(err error, topic, stream string, brokers []string) *failure.Error {
	if f, ok := errors.AsType[*failure.Error](err); ok {
		return f
	}
	var kerr sarama.KError
	hasK := errors.As(err, &kerr)
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed) || hasK && kerr == sarama.ErrSASLAuthenticationFailed:
		return failure.Configf(err, "Keen's Kafka brokers rejected the Project ID and API key; copy both from the project's Access tab")
	case failure.IsTLSTrust(err):
		return failure.Configf(err, "The TLS certificate of Keen's Kafka brokers is not trusted; if a proxy intercepts TLS, add its CA to the system trust store or point SSL_CERT_FILE at it")
	case hasK && kerr == sarama.ErrTopicAuthorizationFailed:
		return failure.Configf(err, "The API key may not write to collection %q; use the project's Master API Key", topic)
	case hasK && (kerr == sarama.ErrInvalidTopic):
		return &failure.Error{Kind: failure.Config, Stream: stream, Cause: err,
			Message: fmt.Sprintf("Keen's brokers refused collection %q (stream %q) as a topic name", topic, stream)}
	case hasK && kerr == sarama.ErrMessageSizeTooLarge:
		return &failure.Error{Kind: failure.System, Stream: stream, Cause: fmt.Errorf("%w: %w", transport.ErrTooLarge, err),
			Message: fmt.Sprintf("Keen's brokers refused a record of stream %q as too large for collection %q", stream, topic)}
	case errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrNotConnected) || isNetwork(err):
		return failure.Transientf(err, "Cannot reach Keen's Kafka brokers (%s)", strings.Join(brokers, ","))
	case hasK && retriable(kerr):
		return failure.Transientf(err, "Keen's Kafka brokers kept failing to accept records for collection %q", topic)
	}
	return failure.Systemf(err, "Keen's Kafka brokers refused records for collection %q", topic)
}

// retriableCodes are the error codes Kafka marks retriable (a
// RetriableException in Kafka's Errors.java), by number: a broker answering
// one of them may well accept the same records later, so a sync that gives
// up on them is a transient_error. TestRetriableCodes holds the list to
// franz-go's kerr, which marks the same codes.
var retriableCodes = map[sarama.KError]string{
	2: "CORRUPT_MESSAGE", 3: "UNKNOWN_TOPIC_OR_PARTITION", 5: "LEADER_NOT_AVAILABLE",
	6: "NOT_LEADER_FOR_PARTITION", 7: "REQUEST_TIMED_OUT", 8: "BROKER_NOT_AVAILABLE",
	9: "REPLICA_NOT_AVAILABLE", 13: "NETWORK_EXCEPTION", 14: "COORDINATOR_LOAD_IN_PROGRESS",
	15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR", 19: "NOT_ENOUGH_REPLICAS",
	20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND", 41: "NOT_CONTROLLER", 56: "KAFKA_STORAGE_ERROR",
	70: "FETCH_SESSION_ID_NOT_FOUND", 71: "INVALID_FETCH_SESSION_EPOCH", 72: "LISTENER_NOT_FOUND",
	74: "FENCED_LEADER_EPOCH", 75: "UNKNOWN_LEADER_EPOCH", 78: "OFFSET_NOT_AVAILABLE",
	80: "PREFERRED_LEADER_NOT_AVAILABLE", 83: "ELIGIBLE_LEADERS_NOT_AVAILABLE", 84: "ELECTION_NOT_NEEDED",
	88: "UNSTABLE_OFFSET_COMMIT", 89: "THROTTLING_QUOTA_EXCEEDED", 100: "UNKNOWN_TOPIC_ID",
	103: "INCONSISTENT_TOPIC_ID", 106: "FETCH_SESSION_TOPIC_ID_ERROR", 133: "SHARE_SESSION_LIMIT_REACHED",
}

func retriable(k sarama.KError) bool { return retriableCodes[k] != "" }

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// Check proves the config on the brokers: TLS, SASL and a metadata request,
// within o.ConnectTimeout, without producing anything. It decides as Open
// does: one seed that answers is enough; each that does not is logged.
func Check(ctx context.Context, cfg *config.Config, o Options) error {
	o.defaults()
	sc, err := saramaConfig(cfg, &o, false)
	if err != nil {
		return failure.Configf(err, "The producer cannot be configured")
	}
	sc.Metadata.Retry.Max = 0
	sc.Metadata.Full = true // a metadata request for the whole cluster
	seeds, err := probe(ctx, cfg.Brokers, sc, o.ConnectTimeout)
	if err != nil {
		return err
	}
	seeds.warn(o.Log)
	c, err := dial(ctx, seeds.Live, sc, o.ConnectTimeout)
	if err != nil {
		return err
	}
	_ = c.Close()
	return nil
}

// Diagnose opens one fresh connection to the brokers, as at start: it
// returns a config_error when they now refuse the key or the certificate
// does not verify, and nil when they accept it or cannot be reached (an
// outage, for which waiting is right).
func (s *Sink) Diagnose(cfg *config.Config) error {
	sc, err := saramaConfig(cfg, &s.opts, false)
	if err != nil {
		return nil
	}
	sc.Net.DialTimeout = 5 * time.Second
	_, err = Probe(cfg.Brokers, sc)
	if err == nil {
		return nil
	}
	if _, slow := errors.AsType[*notKafka](err); slow {
		// Mid-sync, brokers that took a connection and said nothing within
		// probeReadTimeout are overloaded, not misconfigured: wait.
		return nil
	}
	if f := Classify(err, "", "", cfg.Brokers); f.Kind == failure.Config {
		return f
	}
	return nil
}
