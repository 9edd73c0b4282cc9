// Package sink owns the Kafka side: a sarama async producer to Keen's Kafka
// Inbound Cluster (SASL/PLAIN over verified TLS, acks=all, idempotent where
// the brokers allow it, retries with backoff), the pooled envelopes records
// travel in, and the classification of Kafka errors for the user. It reports
// each acknowledgement and each failure to its caller and knows nothing of
// Airbyte states.
package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"

	"destination-keen/internal/config"
	"destination-keen/internal/failure"
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

// Options tune the producer; zero values take the defaults.
type Options struct {
	Compression     string // default "lz4"
	MaxMessageBytes int    // default DefaultMaxMessageBytes
	// Patience bounds how long the producer keeps retrying one batch while
	// the brokers are unreachable or failing with retriable errors.
	Patience time.Duration // default 2 minutes
	// ConnectTimeout bounds the first connection (metadata) attempt.
	ConnectTimeout time.Duration // default 20 seconds
	// RootCAs replaces the system trust store (tests only).
	RootCAs *x509.CertPool
	// ClientID names the connector to the brokers.
	ClientID string
	Logf     func(format string, args ...any)
}

func (o *Options) defaults() {
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
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
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
	metaBackoff := func(retries, _ int) time.Duration {
		return min(250*time.Millisecond<<min(retries, 5), 5*time.Second)
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

// Envelope carries one record through the producer; it is pooled and
// recycled once the record is acknowledged or has failed.
type Envelope struct {
	msg    sarama.ProducerMessage
	Buf    []byte // the event
	Seq    uint64
	Stream string // for messages about this record
	Tag    int    // the caller's own mark (the stream's plan)
}

// Encode and Length make the envelope its own sarama.Encoder, so that
// sending allocates nothing per record.
func (e *Envelope) Encode() ([]byte, error) { return e.Buf, nil }

// Length is the event's size.
func (e *Envelope) Length() int { return len(e.Buf) }

// Topic returns the envelope's topic (its collection).
func (e *Envelope) Topic() string { return e.msg.Topic }

// Sink is an open producer.
type Sink struct {
	client     sarama.Client
	producer   sarama.AsyncProducer
	opts       Options
	Idempotent bool
	pool       sync.Pool
	loops      sync.WaitGroup
}

// Open connects to the brokers and starts a producer. onAck is called for
// each acknowledged envelope, onError for each failed one, from the
// producer's goroutines; the envelope is recycled after they return.
func Open(ctx context.Context, cfg *config.Config, o Options, onAck func(*Envelope), onError func(*Envelope, error)) (*Sink, error) {
	o.defaults()
	s := &Sink{opts: o}
	s.pool.New = func() any { return &Envelope{} }

	client, producer, err := s.connect(ctx, cfg, true)
	if err != nil && refusedIdempotence(err) {
		o.Logf("The brokers refused the idempotent producer (%v); continuing without it: a retried batch may then be written twice", err)
		client, producer, err = s.connect(ctx, cfg, false)
	} else if err == nil {
		s.Idempotent = true
	}
	if err != nil {
		return nil, err
	}
	s.client, s.producer = client, producer
	s.loops.Add(2)
	go func() {
		defer s.loops.Done()
		for m := range producer.Successes() {
			env := m.Metadata.(*Envelope)
			onAck(env)
			s.put(env)
		}
	}()
	go func() {
		defer s.loops.Done()
		for pe := range producer.Errors() {
			env := pe.Msg.Metadata.(*Envelope)
			onError(env, pe.Err)
			s.put(env)
		}
	}()
	return s, nil
}

func (s *Sink) connect(ctx context.Context, cfg *config.Config, idempotent bool) (sarama.Client, sarama.AsyncProducer, error) {
	sc, err := saramaConfig(cfg, &s.opts, idempotent)
	if err != nil {
		return nil, nil, failure.Configf(err, "The producer cannot be configured")
	}
	c, err := dial(ctx, cfg.Brokers, sc, s.opts.ConnectTimeout)
	if err != nil {
		return nil, nil, err
	}
	p, err := sarama.NewAsyncProducerFromClient(c)
	if err != nil {
		c.Close()
		if idempotent && refusedIdempotenceRaw(err) {
			return nil, nil, &idempotenceRefused{err}
		}
		return nil, nil, Classify(err, "", "", cfg.Brokers)
	}
	return c, p, nil
}

// dial probes one broker, then opens a client, within timeout and ctx: a
// rejected key or an untrusted certificate shows at the probe at once, where
// the client would retry every broker. sarama's dials cannot be cancelled:
// when dial gives up first, the attempt ends on its own within the dial
// timeout, and its client, if any, is closed.
func dial(ctx context.Context, brokers []string, sc *sarama.Config, timeout time.Duration) (sarama.Client, error) {
	type result struct {
		c   sarama.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		if err := Probe(brokers, sc); err != nil {
			ch <- result{nil, err}
			return
		}
		c, err := sarama.NewClient(brokers, sc)
		ch <- result{c, err}
	}()
	abandon := func() {
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
	}
	unreachable := "Cannot reach Keen's Kafka brokers (" + strings.Join(brokers, ",") + ")"
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, Classify(r.err, "", "", brokers)
		}
		return r.c, nil
	case <-time.After(timeout):
		abandon()
		return nil, failure.Transientf(fmt.Errorf("no answer within %s", timeout), "%s", unreachable)
	case <-ctx.Done():
		abandon()
		return nil, failure.Transientf(ctx.Err(), "%s", unreachable)
	}
}

// Probe opens one connection (TLS, SASL, API versions) to the first broker
// that answers and closes it. A refused key or certificate fails at once; a
// broker that cannot be reached is skipped.
func Probe(brokers []string, sc *sarama.Config) error {
	var errs []error
	for _, addr := range brokers {
		b := sarama.NewBroker(addr)
		if err := b.Open(sc); err != nil {
			errs = append(errs, err)
			continue
		}
		ok, err := b.Connected()
		_ = b.Close()
		if ok {
			return nil
		}
		if errors.Is(err, sarama.ErrSASLAuthenticationFailed) || failure.IsTLSTrust(err) {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
func (s *Sink) Get() *Envelope { return s.pool.Get().(*Envelope) }

func (s *Sink) put(e *Envelope) {
	if cap(e.Buf) > 1<<20 {
		return // let a huge buffer go
	}
	e.msg = sarama.ProducerMessage{}
	e.Buf, e.Seq, e.Stream, e.Tag = e.Buf[:0], 0, "", 0
	s.pool.Put(e)
}

// Input returns the channel to send envelopes on, after Prepare.
func (s *Sink) Input() chan<- *sarama.ProducerMessage { return s.producer.Input() }

// Prepare readies e for topic and returns the message to send on Input.
func (s *Sink) Prepare(e *Envelope, topic string) *sarama.ProducerMessage {
	e.msg = sarama.ProducerMessage{Topic: topic, Value: e, Metadata: e}
	return &e.msg
}

// MaxMessageBytes is the largest event the sink sends.
func (s *Sink) MaxMessageBytes() int { return s.opts.MaxMessageBytes }

// Close flushes what was sent, waits for every acknowledgement or failure
// to be reported, and disconnects. No Input send may follow.
func (s *Sink) Close() {
	s.producer.AsyncClose()
	s.loops.Wait()
	_ = s.client.Close()
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
		return &failure.Error{Kind: failure.System, Stream: stream, Cause: err,
			Message: fmt.Sprintf("Keen's brokers refused a record of stream %q as too large for collection %q", stream, topic)}
	case errors.Is(err, sarama.ErrOutOfBrokers) || errors.Is(err, sarama.ErrNotConnected) || isNetwork(err):
		return failure.Transientf(err, "Cannot reach Keen's Kafka brokers (%s)", strings.Join(brokers, ","))
	case hasK && retriable(kerr):
		return failure.Transientf(err, "Keen's Kafka brokers kept failing to accept records for collection %q", topic)
	}
	return failure.Systemf(err, "Keen's Kafka brokers refused records for collection %q", topic)
}

func retriable(k sarama.KError) bool {
	switch k {
	case sarama.ErrNotLeaderForPartition, sarama.ErrLeaderNotAvailable, sarama.ErrRequestTimedOut,
		sarama.ErrNotEnoughReplicas, sarama.ErrNotEnoughReplicasAfterAppend, sarama.ErrNetworkException,
		sarama.ErrBrokerNotAvailable, sarama.ErrUnknownTopicOrPartition, sarama.ErrKafkaStorageError,
		sarama.ErrOffsetsLoadInProgress, sarama.ErrNotController, sarama.ErrThrottlingQuotaExceeded:
		return true
	}
	return false
}

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// Check proves the config on the brokers: TLS, SASL and a metadata request,
// within o.ConnectTimeout, without producing anything.
func Check(ctx context.Context, cfg *config.Config, o Options) error {
	o.defaults()
	sc, err := saramaConfig(cfg, &o, false)
	if err != nil {
		return failure.Configf(err, "The producer cannot be configured")
	}
	sc.Metadata.Retry.Max = 0
	sc.Metadata.Full = true // a metadata request for the whole cluster
	c, err := dial(ctx, cfg.Brokers, sc, o.ConnectTimeout)
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
	err = Probe(cfg.Brokers, sc)
	if err == nil {
		return nil
	}
	if f := Classify(err, "", "", cfg.Brokers); f.Kind == failure.Config {
		return f
	}
	return nil
}

// TooLarge reports whether the brokers refused a record as too large.
func TooLarge(err error) bool {
	var kerr sarama.KError
	return errors.As(err, &kerr) && kerr == sarama.ErrMessageSizeTooLarge
}
