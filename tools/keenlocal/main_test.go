package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"destination-keen/tools/keenlocal/emulator"
)

// TestReadyFileDrivesAProducer starts the command as a user would, then
// configures a sarama producer from nothing but ready.json.
func TestReadyFileDrivesAProducer(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready.json")
	ctx, cancel := context.WithCancel(context.Background())
	out := &banner{seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--ready-file", ready, "--api-key", "cmd-key"}, out, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if _, err := os.Stat(ready); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the ready file outlives the emulator: %v", err)
		}
	}()

	select {
	case <-out.seen: // printed once the ready file is written
	case <-time.After(20 * time.Second):
		t.Fatal("not running after 20s")
	}
	b, err := os.ReadFile(ready)
	if err != nil {
		t.Fatal(err)
	}
	var cfg emulator.ConnectorConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)

	producer := func(key string) (sarama.SyncProducer, error) {
		c := sarama.NewConfig()
		c.Version = sarama.V3_0_0_0
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		c.Net.SASL.Enable = true
		c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		c.Net.SASL.Version = sarama.SASLHandshakeV1
		c.Net.SASL.User, c.Net.SASL.Password = cfg.ProjectID, key
		c.Metadata.Retry.Max = 0
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Producer.Return.Successes = true
		return sarama.NewSyncProducer(strings.Split(cfg.KafkaBootstrapServers, ","), c)
	}
	p, err := producer(cfg.APIKey)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "signups", Value: sarama.StringEncoder(`{"plan":"pro"}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := producer("wrong-key"); !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
		t.Fatalf("wrong key on Kafka: got %v", err)
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, cfg.APIURL+"/projects/"+cfg.ProjectID+"/queries/extraction?event_collection=signups", nil)
		req.Header.Set("Authorization", key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		return resp.StatusCode, body.String()
	}
	if status, body := get(cfg.APIKey); status != 200 || !strings.Contains(body, `"plan":"pro"`) {
		t.Fatalf("extraction: %d %s", status, body)
	}
	if status, _ := get("wrong-key"); status != http.StatusUnauthorized {
		t.Fatalf("wrong key on HTTP: %d", status)
	}
	if !strings.Contains(out.String(), "SSL_CERT_FILE="+cfg.CAFile) || !strings.Contains(out.String(), cfg.KafkaBootstrapServers) {
		t.Fatalf("the banner must show the config and the CA:\n%s", out.String())
	}
}

// banner is the command's output, closing seen once it says it runs.
type banner struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	seen chan struct{}
}

func (b *banner) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := strings.Contains(b.buf.String(), "Stop with Ctrl-C.")
	b.buf.Write(p)
	if !was && strings.Contains(b.buf.String(), "Stop with Ctrl-C.") {
		close(b.seen)
	}
	return len(p), nil
}

func (b *banner) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
