package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"destination-keen/internal/config"
	"destination-keen/internal/failure"
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

func pool(t *testing.T, e *emulator.Emulator) *x509.CertPool {
	pem, err := os.ReadFile(e.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pem)
	return p
}

func cfgFor(e *emulator.Emulator, key string) *config.Config {
	return &config.Config{ProjectID: e.ProjectID(), APIKey: config.Secret(key), Brokers: e.BrokerAddrs(), APIURL: e.APIURL()}
}

func TestProduceAndAck(t *testing.T) {
	e := emu(t)
	var mu sync.Mutex
	acked := map[uint64]bool{}
	s, err := Open(context.Background(), cfgFor(e, e.APIKey()), Options{RootCAs: pool(t, e)},
		func(env *Envelope) { mu.Lock(); acked[env.Seq] = true; mu.Unlock() },
		func(env *Envelope, err error) { t.Errorf("record %d failed: %v", env.Seq, err) })
	if err != nil {
		t.Fatal(err)
	}
	if !s.Idempotent {
		t.Error("the emulator allows idempotence; the sink must use it")
	}
	for i := 1; i <= 100; i++ {
		env := s.Get()
		env.Buf = append(env.Buf, `{"n":1}`...)
		env.Seq = uint64(i)
		s.Input() <- s.Prepare(env, "acks")
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	tests := []struct {
		name string
		cfg  *config.Config
		pool *x509.CertPool
		kind failure.Kind
		msg  string
	}{
		{"wrong key", cfgFor(e, "wrong"), pool(t, e), failure.Config, "rejected the Project ID and API key"},
		{"untrusted TLS", cfgFor(e, e.APIKey()), pool(t, other), failure.Config, "not trusted"},
		{"unreachable", &config.Config{ProjectID: "p", APIKey: "k", Brokers: []string{closed}}, pool(t, e), failure.Transient, "Cannot reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			_, err := Open(context.Background(), tt.cfg, Options{RootCAs: tt.pool, ConnectTimeout: 10 * time.Second}, func(*Envelope) {}, func(*Envelope, error) {})
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
		})
	}
}
