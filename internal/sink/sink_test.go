package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"

	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/transport"
	"destination-keen/tools/keenlocal/emulator"
)

func emu(t *testing.T) *emulator.Emulator {
	t.Helper()
	e, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func cfgFor(e *emulator.Emulator, key string) *config.Config {
	return &config.Config{ProjectID: e.ProjectID(), APIKey: config.Secret(key), Brokers: e.BrokerAddrs(), APIURL: e.APIURL()}
}

func TestProduceAndAck(t *testing.T) {
	e := emu(t)
	var mu sync.Mutex
	acked := map[uint64]bool{}
	s, err := Open(context.Background(), cfgFor(e, e.APIKey()), Options{RootCAs: e.TrustPool()},
		outcomes(t, func(env *transport.Envelope) { mu.Lock(); acked[env.Seq] = true; mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Idempotent {
		t.Error("the emulator allows idempotence; the sink must use it")
	}
	for i := 1; i <= 100; i++ {
		env := s.Get()
		env.Buf = append(env.Buf, `{"n":1}`...)
		env.Seq, env.Collection = uint64(i), "acks"
		if !s.Send(context.Background(), env) {
			t.Fatal("Send refused a record with nothing in flight")
		}
	}
	s.Close()
	if len(acked) != 100 {
		t.Fatalf("%d acks, want 100", len(acked))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := e.Events(ctx, "acks")
	if err != nil || len(evs) != 100 {
		t.Fatalf("%d events stored (%v)", len(evs), err)
	}
}

func TestOpenFailures(t *testing.T) {
	e := emu(t)
	other := emu(t)
	closed := emulator.RefusedFor(t)
	tests := []struct {
		name string
		cfg  *config.Config
		pool *x509.CertPool
		kind failure.Kind
		msg  string
	}{
		{"wrong key", cfgFor(e, "wrong"), e.TrustPool(), failure.Config, "rejected the Project ID and API key"},
		{"untrusted TLS", cfgFor(e, e.APIKey()), other.TrustPool(), failure.Config, "not trusted"},
		{"unreachable", &config.Config{ProjectID: "p", APIKey: "k", Brokers: []string{closed}}, e.TrustPool(), failure.Transient, "Cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			_, err := Open(context.Background(), tt.cfg, Options{RootCAs: tt.pool, ConnectTimeout: 10 * time.Second}, outcomes(t, func(*transport.Envelope) {}))
			f := failure.As(err)
			if err == nil || f.Kind != tt.kind || !strings.Contains(f.Message, tt.msg) {
				t.Fatalf("got %v (%s), want %s %q", err, f.Kind, tt.kind, tt.msg)
			}
			if d := time.Since(began); d > 8*time.Second {
				t.Errorf("took %v: a config problem must fail fast", d)
			}
		})
	}
}

func TestRetriesWithin(t *testing.T) {
	b := func(r, _ int) time.Duration { return time.Second }
	if n := retriesWithin(10*time.Second, b); n != 10 {
		t.Fatalf("got %d", n)
	}
	if n := retriesWithin(0, b); n != 1 {
		t.Fatalf("at least one retry: got %d", n)
	}
}

// TestTransportIsAlwaysSecure: whatever the options, the producer verifies
// TLS 1.2 or newer and sends SASL/PLAIN only inside it.
func TestTransportIsAlwaysSecure(t *testing.T) {
	for _, idempotent := range []bool{true, false} {
		c, err := SaramaConfig(&config.Config{ProjectID: "p", APIKey: "k", Brokers: []string{"x:1"}}, Options{}, idempotent)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Net.TLS.Enable || c.Net.TLS.Config == nil || c.Net.TLS.Config.InsecureSkipVerify || c.Net.TLS.Config.MinVersion < tls.VersionTLS12 {
			t.Fatalf("TLS %+v", c.Net.TLS)
		}
		if !c.Net.SASL.Enable || c.Net.SASL.Mechanism != sarama.SASLTypePlaintext || c.Producer.RequiredAcks != sarama.WaitForAll {
			t.Fatal("SASL/PLAIN with acks=all expected")
		}
	}
}

// TestClassify: what the sync reports when the producer gives up on a
// record, by the error the brokers last answered.
func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		kind failure.Kind
		msg  string
	}{
		{"NOT_LEADER_FOR_PARTITION", sarama.ErrNotLeaderForPartition, failure.Transient, "kept failing"},
		{"LEADER_NOT_AVAILABLE", sarama.ErrLeaderNotAvailable, failure.Transient, "kept failing"},
		{"REQUEST_TIMED_OUT", sarama.ErrRequestTimedOut, failure.Transient, "kept failing"},
		{"NOT_ENOUGH_REPLICAS", sarama.ErrNotEnoughReplicas, failure.Transient, "kept failing"},
		{"NOT_ENOUGH_REPLICAS_AFTER_APPEND", sarama.ErrNotEnoughReplicasAfterAppend, failure.Transient, "kept failing"},
		{"UNKNOWN_TOPIC_OR_PARTITION", sarama.ErrUnknownTopicOrPartition, failure.Transient, "kept failing"},
		{"THROTTLING_QUOTA_EXCEEDED", sarama.ErrThrottlingQuotaExceeded, failure.Transient, "kept failing"},
		{"out of brokers", sarama.ErrOutOfBrokers, failure.Transient, "Cannot reach"},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, failure.Transient, "Cannot reach"},
		{"SASL_AUTHENTICATION_FAILED", sarama.ErrSASLAuthenticationFailed, failure.Config, "rejected the Project ID and API key"},
		{"TOPIC_AUTHORIZATION_FAILED", sarama.ErrTopicAuthorizationFailed, failure.Config, "may not write to collection"},
		{"INVALID_TOPIC_EXCEPTION", sarama.ErrInvalidTopic, failure.Config, "as a topic name"},
		{"MESSAGE_TOO_LARGE", sarama.ErrMessageSizeTooLarge, failure.System, "as too large"},
		{"POLICY_VIOLATION", sarama.ErrPolicyViolation, failure.System, "refused records"},
		{"wrapped", fmt.Errorf("produce: %w", sarama.ErrNotLeaderForPartition), failure.Transient, "kept failing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Classify(tt.err, "c", "s", []string{"b1:9092"})
			if f.Kind != tt.kind || !strings.Contains(f.Message, tt.msg) {
				t.Fatalf("%v: %s %q, want %s %q", tt.err, f.Kind, f.Message, tt.kind, tt.msg)
			}
			if tooLarge := tt.err == sarama.ErrMessageSizeTooLarge; errors.Is(f, transport.ErrTooLarge) != tooLarge {
				t.Fatalf("%v: ErrTooLarge %v, want %v", tt.err, !tooLarge, tooLarge)
			}
		})
	}
}

// TestRetriableCodes: every error code Kafka marks retriable is retriable
// here, and no other, by an independent reference: franz-go's kerr, which
// marks each code as Kafka does. A retriable code the brokers kept
// answering past the retries is a transient_error.
func TestRetriableCodes(t *testing.T) {
	checked := 0
	for code := int16(-1); code < 1000; code++ {
		ke, ok := kerr.ErrorForCode(code).(*kerr.Error)
		if !ok {
			continue
		}
		checked++
		if got := retriable(sarama.KError(code)); got != ke.Retriable {
			t.Errorf("%s (%d): retriable %v, Kafka says %v", ke.Message, code, got, ke.Retriable)
		}
		if ke.Retriable && retriableCodes[sarama.KError(code)] != ke.Message {
			t.Errorf("code %d is named %q here, %s in Kafka", code, retriableCodes[sarama.KError(code)], ke.Message)
		}
		if ke.Retriable {
			if f := Classify(sarama.KError(code), "c", "s", []string{"b1:9092"}); f.Kind != failure.Transient || !strings.Contains(f.Message, "kept failing") {
				t.Errorf("%s: %s %q, want a transient_error", ke.Message, f.Kind, f.Message)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d codes known to kerr: the reference is missing", checked)
	}
}

func TestAutoLanes(t *testing.T) {
	tests := []struct {
		rtt  time.Duration
		want int
	}{
		{0, 1},
		{200 * time.Microsecond, 1},
		{10 * time.Millisecond, 1},
		{11 * time.Millisecond, 2},
		{25 * time.Millisecond, 3},
		{40 * time.Millisecond, 4},
		{100 * time.Millisecond, 4},
		{time.Second, 4},
	}
	for _, tt := range tests {
		t.Run(tt.rtt.String(), func(t *testing.T) {
			if got := AutoLanes(tt.rtt); got != tt.want {
				t.Errorf("AutoLanes(%v) = %d, want %d", tt.rtt, got, tt.want)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	ctx := context.Background()
	t.Run("the current lane while it has room, then the next", func(t *testing.T) {
		b := budget{limit: 100, used: make([]int64, 3)}
		var got []int
		for _, n := range []int64{60, 40, 1, 99, 50, 50} {
			k, ok := b.acquire(ctx, 0, n)
			if !ok {
				t.Fatal("refused with room left")
			}
			got = append(got, k)
		}
		if fmt.Sprint(got) != "[0 0 1 1 2 2]" {
			t.Errorf("lanes %v, want [0 0 1 1 2 2]", got)
		}
	})
	t.Run("an event larger than a share goes to an empty lane", func(t *testing.T) {
		b := budget{limit: 100, used: make([]int64, 2)}
		b.used[0] = 1
		if k, ok := b.acquire(ctx, 0, 500); !ok || k != 1 {
			t.Errorf("got lane %d (%t), want lane 1", k, ok)
		}
	})
	t.Run("waits until a quarter of a share is free", func(t *testing.T) {
		b := budget{limit: 100, used: make([]int64, 1)}
		b.acquire(ctx, 0, 100)
		got := make(chan int, 1)
		go func() {
			k, _ := b.acquire(ctx, 0, 10)
			got <- k
		}()
		waiting := func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.wake != nil }
		for !waiting() {
			select {
			case <-got:
				t.Fatal("acquired past the limit")
			case <-time.After(time.Millisecond):
			}
		}
		b.release(0, 10) // 90 in flight: room for 10, but under a quarter free
		select {
		case <-got:
			t.Fatal("woken before a quarter of the share was free")
		case <-time.After(20 * time.Millisecond):
		}
		b.release(0, 15)
		if k := <-got; k != 0 {
			t.Errorf("lane %d", k)
		}
		if b.used[0] != 85 {
			t.Errorf("%d bytes in flight, want 85", b.used[0])
		}
	})
	t.Run("gives up when the context ends", func(t *testing.T) {
		b := budget{limit: 100, used: make([]int64, 1)}
		b.acquire(ctx, 0, 100)
		c, cancel := context.WithCancel(ctx)
		cancel()
		if _, ok := b.acquire(c, 0, 1); ok {
			t.Error("acquired past the limit")
		}
	})
}

// TestLanesOverALink: brokers 30 ms away get several producers, counted
// from the round trip the probe measured; each has its own producer id,
// and each event is acknowledged once.
func TestLanesOverALink(t *testing.T) {
	const rtt = 30 * time.Millisecond
	e, err := emulator.Start(emulator.Options{Latency: rtt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	var mu sync.Mutex
	acked := map[uint64]int{}
	s, err := Open(context.Background(), cfgFor(e, e.APIKey()), Options{RootCAs: e.TrustPool(), LaneBytes: 64 << 10},
		outcomes(t, func(env *transport.Envelope) { mu.Lock(); acked[env.Seq]++; mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	if s.RoundTrip < rtt || len(s.lanes) != AutoLanes(s.RoundTrip) || len(s.lanes) < 3 {
		t.Fatalf("round trip %v, %d lanes: want at least %v and AutoLanes of it", s.RoundTrip, len(s.lanes), rtt)
	}
	const n = 3000
	for i := 1; i <= n; i++ {
		env := s.Get()
		env.Seq = uint64(i)
		env.Buf = fmt.Appendf(env.Buf, `{"n":%d,"pad":"%0200d"}`, i, i)
		env.Collection = "lanes"
		if !s.Send(context.Background(), env) {
			t.Fatal("Send gave up without a cancelled context")
		}
	}
	s.Close()
	for i := uint64(1); i <= n; i++ {
		if acked[i] != 1 {
			t.Fatalf("record %d acknowledged %d times", i, acked[i])
		}
	}
	// Each acknowledgement gave its bytes back to the lane that held them:
	// once the sink is closed, every lane's share is whole again.
	for k, used := range s.budget.used {
		if used != 0 {
			t.Errorf("lane %d: %d bytes still counted in flight after the close", k, used)
		}
	}
	ids, err := e.Producers(context.Background(), "lanes")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for id, k := range ids {
		if id < 0 {
			t.Errorf("%d events from a producer without idempotence", k)
		}
		total += k
	}
	if len(ids) != len(s.lanes) || total != n {
		t.Errorf("events per producer id %v: want %d producers and %d events", ids, len(s.lanes), n)
	}
}

// TestProbeSeeds: every seed is probed at once. A seed that refuses
// connections, or one that takes them and never answers (after the others
// have answered, for seedGrace), is dead; the others are live, in the order
// given; no seed answering fails; a refused key fails whatever the seeds.
func TestProbeSeeds(t *testing.T) {
	e := emu(t)
	refusedAddr := emulator.RefusedFor(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		<-done
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	old := seedGrace
	seedGrace = 300 * time.Millisecond
	t.Cleanup(func() { seedGrace = old })

	live := e.BrokerAddrs()
	sc, err := SaramaConfig(cfgFor(e, e.APIKey()), Options{RootCAs: e.TrustPool()}, false)
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := Probe([]string{refusedAddr, live[0], silent.Addr().String(), live[1], live[2]}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seeds.Live, live) || len(seeds.Dead) != 2 || seeds.Dead[0].Addr != refusedAddr || seeds.Dead[1].Addr != silent.Addr().String() {
		t.Fatalf("live %v dead %+v", seeds.Live, seeds.Dead)
	}
	if !strings.Contains(seeds.Dead[1].Err.Error(), "no answer within") || seeds.RoundTrip <= 0 {
		t.Fatalf("the silent seed: %v; round trip %v", seeds.Dead[1].Err, seeds.RoundTrip)
	}
	if _, err := Probe([]string{refusedAddr}, sc); err == nil {
		t.Fatal("no seed answered, and the probe passed")
	}
	bad, _ := SaramaConfig(cfgFor(e, "wrong-key"), Options{RootCAs: e.TrustPool()}, false)
	if _, err := Probe([]string{refusedAddr, live[0]}, bad); !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
		t.Fatalf("a refused key: %v", err)
	}
}

// TestOptionsFor: a sync's producer takes compression and producers from
// its config and outlasts its delivery timeout by 30 s; the rest are the
// defaults.
func TestOptionsFor(t *testing.T) {
	cfg, err := config.Parse([]byte(`{"project_id":"p","api_key":"k","compression":"zstd","kafka_producers":3,"delivery_timeout_seconds":60}`))
	if err != nil {
		t.Fatal(err)
	}
	o := OptionsFor(cfg)
	if o.Compression != "zstd" || o.Lanes != 3 || o.Patience != 90*time.Second {
		t.Fatalf("compression %q, lanes %d, patience %v", o.Compression, o.Lanes, o.Patience)
	}
	if o.LaneBytes != BytesInFlightPerLane || o.MaxMessageBytes != DefaultMaxMessageBytes || o.ConnectTimeout != 20*time.Second || o.ClientID != "destination-keen" || o.Log == nil {
		t.Fatalf("defaults not taken: %+v", o)
	}
	if d := OptionsFor(&config.Config{}); d.Compression != "lz4" || d.Lanes != 0 || d.Patience != 30*time.Second {
		t.Fatalf("zero config: %+v", d)
	}
}

// outcomes reports stored events to stored and fails the test on any other
// outcome: the sink never reports a refusal.
func outcomes(t *testing.T, stored func(*transport.Envelope)) transport.Outcomes {
	return transport.Outcomes{
		Stored:  stored,
		Refused: func(env *transport.Envelope, r transport.Refusal) { t.Errorf("record %d refused: %v", env.Seq, r) },
		Failed:  func(env *transport.Envelope, err error) { t.Errorf("record %d failed: %v", env.Seq, err) },
	}
}
