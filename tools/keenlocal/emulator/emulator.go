// Package emulator is a local stand-in for Keen's ingestion side, close
// enough that the connector's real code paths run against it unchanged: a
// Kafka cluster (kfake, the real wire protocol) behind SASL/PLAIN and TLS,
// where the username is the project ID and the password the key; Keen's HTTP
// API for deleting collections, listing them and extracting events, over TLS
// with the same generated CA; Keen's event rules, checked on every consumed
// message, with the events Keen would silently drop kept apart as rejected;
// Keen's uniqueness tokens (the first event with a token in a collection is
// stored, later ones dropped and counted); and faults to inject (failed,
// slow or dropped produce requests, failing deletes, a blackhole mode for
// benchmarks). It is a test tool: it keeps everything in memory and is not a
// model of Keen's query engine.
package emulator

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// Options configure an emulator. The zero value is usable. Everything
// listens on 127.0.0.1.
type Options struct {
	ProjectID string // default "keenlocal"
	APIKey    string // the master key; default a random one
	// WriteKey, when set, is a second key that the brokers accept but the
	// HTTP API refuses where a master key is needed (403).
	WriteKey   string
	Brokers    int   // default 3
	Partitions int   // partitions of each auto-created topic; default 3
	KafkaPorts []int // default: random free ports
	HTTPPort   int   // default: a random free port
	// Dir receives ca.pem (made when missing); default a temporary folder
	// removed by Close.
	Dir string
	// DataDir makes the brokers persist what they store (kfake's DataDir).
	DataDir string
	// Blackhole acknowledges produce requests without storing anything.
	Blackhole bool
	// Latency holds every byte the brokers and the HTTPS API send for this
	// long, so that each round trip to them costs that much more, as
	// across the internet.
	Latency time.Duration
	// ExtraRule, when set, is one more of Keen's rules, applied after the
	// known ones over Kafka and HTTPS alike: a rule the connector does not
	// know, for tests of what it does with Keen's refusals.
	ExtraRule func(collection string, ev Event) error
	// Logf, when set, receives one line per notable event.
	Logf func(format string, args ...any)
}

// Event is one stored event as extraction returns it.
type Event = map[string]any

// Rejection is an event Keen would have dropped, and why.
type Rejection struct {
	Collection string `json:"collection"`
	Partition  int32  `json:"partition"`
	Offset     int64  `json:"offset"`
	Reason     string `json:"reason"`
	Value      string `json:"value"` // the first KiB of the message value
}

// Request is one HTTP API call the emulator answered.
type Request struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
}

// Emulator is a running local Keen.
type Emulator struct {
	opts     Options
	ca       *authority
	brokerCA *authority // replaces ca for the brokers when set
	caFile   string
	ownDir   string
	cluster  *kfake.Cluster
	consumer *kgo.Client
	admin    *kadm.Client
	http     *http.Server
	httpAddr string
	internal struct{ user, pass string }

	mu        sync.Mutex
	events    map[string][]stored
	tokens    map[string]map[string]bool // uniqueness tokens of the stored events, per collection
	dups      map[string]int             // events dropped as duplicates, per collection
	producers map[string]map[int64]int   // stored events per Kafka producer id, per collection
	codecs    map[string]map[string]int  // stored events per batch compression, per collection
	rejected  []Rejection
	consumed  map[string]map[int32]int64 // next offset to consume, per topic partition
	cutoff    map[string]map[int32]int64 // offsets below are deleted, per collection partition
	deletes   map[string][]deleteRule    // filtered deletes, per collection
	requests  []Request
	deleteFlt []httpFault
	bulkFlt   []bulkFault      // faults of the next bulk requests
	bulkCount atomic.Int64     // bulk requests read
	httpsNext map[string]int64 // the next offset of an event sent over HTTPS, per collection
	filed     chan struct{}    // closed, and replaced, after the consumer files a fetch

	kafkaMu     sync.Mutex // serialises StopKafka and StartKafka
	movers      movers     // leader moves started by produce requests
	stopConsume context.CancelFunc
	consumeDone chan struct{}
	closeOnce   sync.Once
}

type stored struct {
	partition int32
	offset    int64
	event     Event
}

type httpFault struct {
	status     int
	retryAfter string
}

// Start starts an emulator; Close stops it.
func Start(opts Options) (*Emulator, error) {
	if opts.ProjectID == "" {
		opts.ProjectID = "keenlocal"
	}
	if opts.APIKey == "" {
		opts.APIKey = randomHex(16)
	}
	if opts.Brokers <= 0 {
		opts.Brokers = 3
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 3
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	e := &Emulator{
		opts:      opts,
		events:    map[string][]stored{},
		tokens:    map[string]map[string]bool{},
		dups:      map[string]int{},
		producers: map[string]map[int64]int{},
		codecs:    map[string]map[string]int{},
		consumed:  map[string]map[int32]int64{},
		cutoff:    map[string]map[int32]int64{},
		deletes:   map[string][]deleteRule{},
		httpsNext: map[string]int64{},
		filed:     make(chan struct{}),
	}
	e.internal.user, e.internal.pass = "keenlocal-internal", randomHex(16)
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()

	var err error
	if e.ca, err = newAuthority(); err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "keenlocal-"); err != nil {
			return nil, fmt.Errorf("temp dir: %w", err)
		}
		e.ownDir = dir
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dir: %w", err)
	}
	e.caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(e.caFile, e.ca.caPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA: %w", err)
	}
	if err := e.startKafka(); err != nil {
		return nil, err
	}
	if err := e.startHTTP(); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (e *Emulator) startKafka() error {
	kopts := []kfake.Opt{
		kfake.NumBrokers(e.opts.Brokers),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(e.opts.Partitions),
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", e.opts.ProjectID, e.opts.APIKey),
		kfake.Superuser("PLAIN", e.internal.user, e.internal.pass),
		kfake.TLS(e.brokerAuthority().serverConfig()),
	}
	if e.opts.Blackhole {
		kopts = append(kopts, kfake.BlackholeProduce())
	}
	if e.opts.Latency > 0 {
		kopts = append(kopts, kfake.ListenFn(listenDelayed(e.opts.Latency)))
	}
	if e.opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(e.opts.DataDir))
	}
	if len(e.opts.KafkaPorts) > 0 {
		kopts = append(kopts, kfake.Ports(e.opts.KafkaPorts...))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return fmt.Errorf("start kafka: %w", err)
	}
	e.cluster = c
	if len(e.opts.KafkaPorts) == 0 {
		// Remember the ports kfake chose, so that a restart can reuse them.
		for _, a := range c.ListenAddrs() {
			_, p, _ := net.SplitHostPort(a)
			port, _ := strconv.Atoi(p)
			e.opts.KafkaPorts = append(e.opts.KafkaPorts, port)
		}
	}
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) { return e.controlSASL(c, req) })

	if e.opts.Blackhole {
		return nil // nothing is stored, so nothing is consumed
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.BrokerAddrs()...),
		kgo.DialTLSConfig(e.brokerAuthority().clientConfig()),
		kgo.SASL(plain.Auth{User: e.internal.user, Pass: e.internal.pass}.AsMechanism()),
		kgo.ConsumeRegex(),
		kgo.ConsumeTopics(".*"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.MetadataMaxAge(500*time.Millisecond),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.FetchMaxBytes(256<<20),
		kgo.FetchMaxPartitionBytes(128<<20),
		kgo.BrokerMaxReadBytes(512<<20),
	)
	if err != nil {
		return fmt.Errorf("start consumer: %w", err)
	}
	e.consumer = cl
	e.admin = kadm.NewClient(cl)
	ctx, cancel := context.WithCancel(context.Background())
	e.stopConsume = cancel
	e.consumeDone = make(chan struct{})
	e.mu.Lock()
	if e.filed == nil {
		e.filed = make(chan struct{})
	}
	e.mu.Unlock()
	go e.consume(ctx)
	return nil
}

// controlSASL answers a wrong password the way a real broker does: a
// SaslAuthenticate response with SASL_AUTHENTICATION_FAILED and a message
// (kfake alone would just close the connection). The write key is let in as
// the project's user.
func (e *Emulator) controlSASL(c *kfake.Cluster, kreq kmsg.Request) (kmsg.Response, error, bool) {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	parts := strings.SplitN(string(req.SASLAuthBytes), "\x00", 3)
	if len(parts) != 3 {
		return nil, nil, false // not PLAIN: kfake decides
	}
	user, pass := parts[1], parts[2]
	switch {
	case user == e.internal.user && pass == e.internal.pass,
		user == e.opts.ProjectID && pass == e.opts.APIKey:
		return nil, nil, false
	case user == e.opts.ProjectID && e.opts.WriteKey != "" && pass == e.opts.WriteKey:
		req.SASLAuthBytes = []byte("\x00" + user + "\x00" + e.opts.APIKey)
		return nil, nil, false
	}
	c.KeepControl()
	e.opts.Logf("kafka: SASL authentication failed for user %q", user)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	msg := "Authentication failed: Invalid username or password"
	resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
	resp.ErrorMessage = &msg
	return resp, nil, true
}

// consume reads every topic from the start and files each message as a
// stored event or a rejection.
func (e *Emulator) consume(ctx context.Context) {
	defer close(e.consumeDone)
	for {
		fetches := e.consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) { e.file(r) })
		close(e.filed) // wake whoever waits for events
		e.filed = make(chan struct{})
		e.mu.Unlock()
	}
}

// WaitEvents waits until the collections hold at least n events between
// them, as the consumer files them (no polling: it wakes after each fetch),
// or ctx ends; it returns how many they hold.
func (e *Emulator) WaitEvents(ctx context.Context, n int, collections ...string) (int, error) {
	for {
		e.mu.Lock()
		held := 0
		for _, c := range collections {
			held += len(e.events[c])
		}
		filed := e.filed
		e.mu.Unlock()
		if held >= n {
			return held, nil
		}
		select {
		case <-filed:
		case <-ctx.Done():
			return held, ctx.Err()
		}
	}
}

// file stores or rejects one record; e.mu is held.
func (e *Emulator) file(r *kgo.Record) {
	parts := e.consumed[r.Topic]
	if parts == nil {
		parts = map[int32]int64{}
		e.consumed[r.Topic] = parts
	}
	if next, seen := parts[r.Partition]; seen && r.Offset < next {
		// Filed already: the consumer reads a partition again from an
		// earlier offset after its leader moves (its leader epoch
		// changed). An offset is one stored message, so it is filed once.
		return
	}
	parts[r.Partition] = r.Offset + 1
	if strings.HasPrefix(r.Topic, "__") {
		return // Kafka's internal topics
	}
	if r.Offset < e.cutoff[r.Topic][r.Partition] {
		return // deleted
	}
	ev, err := e.check(r.Topic, r.Value)
	if err != nil {
		e.reject(r.Topic, r.Partition, r.Offset, r.Value, err)
		return
	}
	for _, d := range e.deletes[r.Topic] {
		if r.Offset < d.ends[r.Partition] && d.matches(ev) {
			return // deleted by a filtered delete made after it was produced
		}
	}
	if !e.store(r.Topic, r.Partition, r.Offset, r.Timestamp, ev) {
		return
	}
	if e.producers[r.Topic] == nil {
		e.producers[r.Topic] = map[int64]int{}
	}
	e.producers[r.Topic][r.ProducerID]++
	if e.codecs[r.Topic] == nil {
		e.codecs[r.Topic] = map[string]int{}
	}
	e.codecs[r.Topic][codecNames[r.Attrs.CompressionType()]]++
}

// check applies Keen's rules to an event for collection: its collection
// name, then the event itself.
func (e *Emulator) check(collection string, value []byte) (Event, error) {
	if err := CheckCollection(collection); err != nil {
		return nil, err
	}
	ev, err := CheckEvent(value)
	if err == nil && e.opts.ExtraRule != nil {
		err = e.opts.ExtraRule(collection, ev)
	}
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// reject keeps an event Keen would drop, and why; e.mu is held. partition
// is HTTPSPartition for an event sent over HTTPS.
func (e *Emulator) reject(collection string, partition int32, offset int64, value []byte, why error) {
	if len(value) > 1024 {
		value = value[:1024]
	}
	e.rejected = append(e.rejected, Rejection{Collection: collection, Partition: partition, Offset: offset, Reason: why.Error(), Value: string(value)})
	e.opts.Logf("rejected %s/%d@%d: %s", collection, partition, offset, why)
}

// store keeps an event that passed Keen's rules, with the properties Keen
// adds, unless its uniqueness token is taken in the collection (a duplicate,
// counted); it reports whether it stored it. e.mu is held.
func (e *Emulator) store(collection string, partition int32, offset int64, at time.Time, ev Event) bool {
	k, _ := ev["keen"].(map[string]any)
	if tok, ok := k["uniqueness_token"].(string); ok {
		// Keen keeps only the first event with a token in a collection.
		if e.tokens[collection][tok] {
			e.dups[collection]++
			return false
		}
		if e.tokens[collection] == nil {
			e.tokens[collection] = map[string]bool{}
		}
		e.tokens[collection][tok] = true
	}
	created := at.UTC().Format("2006-01-02T15:04:05.000Z")
	if k == nil {
		k = map[string]any{}
		ev["keen"] = k
	}
	k["created_at"] = created
	k["id"] = randomHex(12)
	if _, ok := k["timestamp"]; !ok {
		k["timestamp"] = created
	}
	e.events[collection] = append(e.events[collection], stored{partition: partition, offset: offset, event: ev})
	return true
}

// Sync waits until everything the brokers have acknowledged so far has been
// consumed and filed, so that reads after a produce see it.
func (e *Emulator) Sync(ctx context.Context) error {
	_, err := e.sync(ctx)
	return err
}

func (e *Emulator) sync(ctx context.Context) (kadm.ListedOffsets, error) {
	if e.opts.Blackhole {
		return nil, nil
	}
	// Ask the brokers, not the client's metadata cache, which topics exist.
	mreq := kmsg.NewPtrMetadataRequest()
	mresp, err := mreq.RequestWith(ctx, e.consumer)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var topics []string
	for _, t := range mresp.Topics {
		if t.Topic != nil && t.ErrorCode == 0 {
			topics = append(topics, *t.Topic)
		}
	}
	if len(topics) == 0 {
		return kadm.ListedOffsets{}, nil
	}
	ends, err := e.admin.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	e.consumer.ForceMetadataRefresh()
	for {
		behind := false
		e.mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && e.consumed[o.Topic][o.Partition] < o.Offset {
				behind = true
			}
		})
		e.mu.Unlock()
		if !behind {
			return ends, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the consumer: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Events returns copies of the stored events of a collection, after a Sync:
// a caller may change them without changing what the emulator holds.
func (e *Emulator) Events(ctx context.Context, collection string) ([]Event, error) {
	if err := e.Sync(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Event, 0, len(e.events[collection]))
	for _, s := range e.events[collection] {
		out = append(out, deepCopy(s.event).(Event))
	}
	return out, nil
}

// deepCopy copies a decoded JSON value, so that what a caller does with an
// event it read leaves the stored one as it is.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, x := range v {
			c[k] = deepCopy(x)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, x := range v {
			c[i] = deepCopy(x)
		}
		return c
	}
	return v
}

// Collections returns every collection with its event count, after a Sync.
func (e *Emulator) Collections(ctx context.Context) (map[string]int, error) {
	if err := e.Sync(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for c, evs := range e.events {
		if len(evs) > 0 {
			out[c] = len(evs)
		}
	}
	return out, nil
}

// Producers counts the stored events of a collection per Kafka producer id
// that wrote them (-1 for a producer without idempotence), once everything
// acknowledged so far is filed.
func (e *Emulator) Producers(ctx context.Context, collection string) (map[int64]int, error) {
	if err := e.Sync(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[int64]int{}
	for id, n := range e.producers[collection] {
		out[id] = n
	}
	return out, nil
}

// codecNames name Kafka's batch compression codecs by their attribute bits.
var codecNames = [8]string{"none", "gzip", "snappy", "lz4", "zstd", "5", "6", "7"}

// Codecs counts the stored events of a collection per compression of the
// batch that carried them (none, gzip, snappy, lz4, zstd), once everything
// acknowledged so far is filed.
func (e *Emulator) Codecs(ctx context.Context, collection string) (map[string]int, error) {
	if err := e.Sync(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for c, n := range e.codecs[collection] {
		out[c] = n
	}
	return out, nil
}

// Duplicates returns, per collection, how many events were dropped because
// an earlier event of the collection had the same keen.uniqueness_token,
// after a Sync.
func (e *Emulator) Duplicates(ctx context.Context) (map[string]int, error) {
	if err := e.Sync(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for c, n := range e.dups {
		out[c] = n
	}
	return out, nil
}

// Rejected returns the events Keen would have dropped, after a Sync.
func (e *Emulator) Rejected(ctx context.Context) ([]Rejection, error) {
	if err := e.Sync(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Rejection(nil), e.rejected...), nil
}

// DeleteCollection removes every event produced to collection so far; events
// produced afterwards are kept. Deleting an unknown collection is fine.
func (e *Emulator) DeleteCollection(ctx context.Context, collection string) error {
	ends, err := e.sync(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cut := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == collection {
			cut[o.Partition] = o.Offset
		}
	})
	e.cutoff[collection] = cut
	delete(e.events, collection)
	delete(e.tokens, collection) // the tokens of deleted events go with them
	delete(e.producers, collection)
	delete(e.codecs, collection)
	e.opts.Logf("deleted collection %s", collection)
	return nil
}

// Filter is one of Keen's query filters, as its delete takes them.
type Filter struct {
	PropertyName  string `json:"property_name"`
	Operator      string `json:"operator"`
	PropertyValue any    `json:"property_value"`
}

// deleteRule is a filtered delete: events produced before it (offsets below
// ends) that match every filter are gone.
type deleteRule struct {
	filters []Filter
	ends    map[int32]int64
}

func (d deleteRule) matches(ev Event) bool {
	for _, f := range d.filters {
		if !f.matches(ev) {
			return false
		}
	}
	return true
}

// Operators Keen's filters take that the emulator implements.
var filterOperators = map[string]bool{"eq": true, "ne": true, "lt": true, "lte": true, "gt": true, "gte": true, "in": true, "exists": true}

// matches applies the filter to an event. The property is a path with dots
// (keen.timestamp, user.id). ne and the comparisons need the property to
// exist; exists takes true or false.
func (f Filter) matches(ev Event) bool {
	var v any = map[string]any(ev)
	found := true
	for _, step := range strings.Split(f.PropertyName, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			found = false
			break
		}
		if v, ok = m[step]; !ok {
			found = false
			break
		}
	}
	switch f.Operator {
	case "exists":
		want, _ := f.PropertyValue.(bool)
		return found == want
	case "in":
		list, _ := f.PropertyValue.([]any)
		for _, x := range list {
			if found && compare(v, x) == 0 {
				return true
			}
		}
		return false
	}
	if !found {
		return false
	}
	c := compare(v, f.PropertyValue)
	switch f.Operator {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "lt":
		return c == -1
	case "lte":
		return c == -1 || c == 0
	case "gt":
		return c == 1
	case "gte":
		return c == 1 || c == 0
	}
	return false
}

// compare orders two JSON values of one type (numbers as numbers, strings
// as strings, booleans): -1, 0 or 1; 2 when they cannot be compared.
func compare(a, b any) int {
	num := func(x any) (float64, bool) {
		switch n := x.(type) {
		case json.Number:
			f, err := n.Float64()
			return f, err == nil
		case float64:
			return n, true
		}
		return 0, false
	}
	if x, ok := num(a); ok {
		y, ok := num(b)
		switch {
		case !ok:
			return 2
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	if x, ok := a.(string); ok {
		y, ok := b.(string)
		if !ok {
			return 2
		}
		return strings.Compare(x, y)
	}
	if x, ok := a.(bool); ok {
		if y, ok := b.(bool); ok && x == y {
			return 0
		}
	}
	return 2
}

// DeleteEvents removes the events of collection produced so far that match
// every filter (Keen's filtered delete); events produced afterwards are
// kept. With no filter it is DeleteCollection.
func (e *Emulator) DeleteEvents(ctx context.Context, collection string, filters []Filter) error {
	if len(filters) == 0 {
		return e.DeleteCollection(ctx, collection)
	}
	for _, f := range filters {
		if !filterOperators[f.Operator] {
			return fmt.Errorf("unknown filter operator %q", f.Operator)
		}
	}
	ends, err := e.sync(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	d := deleteRule{filters: filters, ends: map[int32]int64{HTTPSPartition: e.httpsNext[collection]}}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == collection {
			d.ends[o.Partition] = o.Offset
		}
	})
	e.deletes[collection] = append(e.deletes[collection], d)
	kept := e.events[collection][:0]
	for _, s := range e.events[collection] {
		if s.offset < d.ends[s.partition] && d.matches(s.event) {
			if k, _ := s.event["keen"].(map[string]any); k != nil {
				if tok, ok := k["uniqueness_token"].(string); ok {
					delete(e.tokens[collection], tok)
				}
			}
			continue
		}
		kept = append(kept, s)
	}
	e.events[collection] = kept
	e.opts.Logf("deleted events of collection %s matching %v", collection, filters)
	return nil
}

// Requests returns the HTTP API calls answered so far, in order.
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.requests...)
}

// ProjectID returns the project's ID (the SASL username).
func (e *Emulator) ProjectID() string { return e.opts.ProjectID }

// APIKey returns the master key (the SASL password).
func (e *Emulator) APIKey() string { return e.opts.APIKey }

// CAFile returns the path of the PEM file of the CA that signed the
// brokers' and the API's certificates.
func (e *Emulator) CAFile() string { return e.caFile }

// BrokerAddrs returns the brokers' host:port addresses.
func (e *Emulator) BrokerAddrs() []string {
	out := make([]string, len(e.opts.KafkaPorts))
	for i, p := range e.opts.KafkaPorts {
		out[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return out
}

// APIURL returns the base URL of the HTTP API, like https://api.keen.io/3.0.
func (e *Emulator) APIURL() string { return "https://" + e.httpAddr + "/3.0" }

// RejectedURL returns the endpoint listing rejected events.
func (e *Emulator) RejectedURL() string { return "https://" + e.httpAddr + "/emulator/rejected" }

// Cluster returns the kfake cluster, for faults this package does not wrap.
func (e *Emulator) Cluster() *kfake.Cluster { return e.cluster }

// ConnectorConfig is the connector config that points at the emulator, plus
// the CA file a client must trust.
type ConnectorConfig struct {
	ProjectID             string `json:"project_id"`
	APIKey                string `json:"api_key"`
	KafkaBootstrapServers string `json:"kafka_bootstrap_servers"`
	APIURL                string `json:"api_url"`
	CAFile                string `json:"ca_file"`
}

// Config returns the connector config for this emulator.
func (e *Emulator) Config() ConnectorConfig {
	return ConnectorConfig{
		ProjectID:             e.opts.ProjectID,
		APIKey:                e.opts.APIKey,
		KafkaBootstrapServers: strings.Join(e.BrokerAddrs(), ","),
		APIURL:                e.APIURL(),
		CAFile:                e.caFile,
	}
}

// JSON is the connector's config document for this emulator (every member
// but ca_file, which is the test's to trust, not the connector's to read),
// with override's members added or replacing.
func (c ConnectorConfig) JSON(override map[string]any) []byte {
	doc := map[string]any{"project_id": c.ProjectID, "api_key": c.APIKey, "kafka_bootstrap_servers": c.KafkaBootstrapServers, "api_url": c.APIURL}
	for k, v := range override {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("emulator: config override does not marshal: %v", err)) // a test's mistake
	}
	return b
}

// TrustPool is a certificate pool holding the emulator's CA, for clients
// in tests (a user trusts CAFile through SSL_CERT_FILE instead).
func (e *Emulator) TrustPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.ca.caPEM)
	return pool
}

// WriteReadyFile writes Config as JSON to path atomically (a temporary file
// renamed into place), so that a reader never sees half of it.
func (e *Emulator) WriteReadyFile(path string) error {
	b, err := json.MarshalIndent(e.Config(), "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ready-*")
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("ready file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}

// Close stops everything and removes the temporary folder it made.
func (e *Emulator) Close() {
	e.closeOnce.Do(func() {
		if e.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = e.http.Shutdown(ctx)
			cancel()
		}
		e.stopKafka()
		if e.ownDir != "" {
			os.RemoveAll(e.ownDir)
		}
	})
}

func (e *Emulator) brokerAuthority() *authority {
	if e.brokerCA != nil {
		return e.brokerCA
	}
	return e.ca
}

// stopKafka closes the consumer and the brokers.
func (e *Emulator) stopKafka() {
	e.movers.stop()
	if e.stopConsume != nil {
		e.stopConsume()
		<-e.consumeDone
		e.stopConsume = nil
	}
	if e.consumer != nil {
		e.consumer.Close()
		e.consumer = nil
	}
	if e.cluster != nil {
		e.cluster.Close()
		e.cluster = nil
	}
}

// StopKafka takes every broker down: connections are refused until
// StartKafka. With Options.DataDir set, what the brokers stored survives.
func (e *Emulator) StopKafka() {
	e.kafkaMu.Lock()
	defer e.kafkaMu.Unlock()
	e.stopKafka()
	e.opts.Logf("kafka: brokers stopped")
}

// StartKafka brings the brokers back on the same ports after StopKafka.
// The events are filed again from what the brokers kept (DataDir), deletes
// included.
func (e *Emulator) StartKafka() error {
	e.kafkaMu.Lock()
	defer e.kafkaMu.Unlock()
	if e.cluster != nil {
		return errors.New("kafka is running")
	}
	e.mu.Lock()
	e.events, e.rejected, e.consumed = map[string][]stored{}, nil, map[string]map[int32]int64{}
	e.tokens, e.dups, e.producers = map[string]map[string]bool{}, map[string]int{}, map[string]map[int64]int{}
	e.codecs = map[string]map[string]int{}
	e.mu.Unlock()
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the old sockets may take a moment to free their ports
		if err = e.startKafka(); err == nil {
			e.opts.Logf("kafka: brokers started again")
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// ReplaceBrokerCertificate gives the brokers, at the next StartKafka, a
// certificate from a new CA that no client trusts, as a misconfigured proxy
// or a mistaken certificate rollout would. Call it while they are stopped.
func (e *Emulator) ReplaceBrokerCertificate() error {
	ca, err := newAuthority()
	if err != nil {
		return err
	}
	e.brokerCA = ca
	return nil
}

// SetAPIKey replaces the master key, as a user rotating it in Keen's web app
// would: the HTTP API takes the new key at once, the brokers at the next
// StartKafka. Call it while the brokers are stopped and no API call is made.
func (e *Emulator) SetAPIKey(key string) { e.opts.APIKey = key }

// Faults.

// FailProduce answers the next n produce requests (to topic, or to any topic
// when topic is "") with the Kafka error err, e.g. kerr.NotLeaderForPartition
// (retriable) or kerr.TopicAuthorizationFailed (fatal). n < 0 means until the
// returned function is called.
func (e *Emulator) FailProduce(topic string, n int, err *kerr.Error) (remove func()) {
	if n == 0 {
		return func() {}
	}
	h := e.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: err, Count: n})
	return h.Remove
}

// RefuseIdempotence answers every InitProducerId request with
// CLUSTER_AUTHORIZATION_FAILED, as brokers do for a user without the
// IdempotentWrite permission.
func (e *Emulator) RefuseIdempotence() {
	e.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.ClusterAuthorizationFailed, Count: -1})
}

// DelayProduce holds each of the next n produce requests for d before the
// brokers handle it. The returned channel is closed once the n-th delay is
// over: what the brokers read from then on comes after that request.
func (e *Emulator) DelayProduce(d time.Duration, n int) <-chan struct{} {
	over := make(chan struct{})
	var delayed atomic.Int64
	e.controlProduce(n, func(c *kfake.Cluster) (kmsg.Response, error, bool) {
		c.SleepControl(func() { time.Sleep(d) })
		if delayed.Add(1) == int64(n) {
			close(over)
		}
		return nil, nil, false
	})
	return over
}

// HoldProduce holds every produce request from now on, unanswered, until
// release is called; arrived is closed when the first one is held. A test
// uses it to act while records are in flight and their states not yet out.
func (e *Emulator) HoldProduce() (arrived <-chan struct{}, release func()) {
	arr, rel := make(chan struct{}), make(chan struct{})
	var arrOnce, relOnce sync.Once
	c := e.cluster
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-rel:
			c.DropControl()
			return nil, nil, false
		default:
		}
		arrOnce.Do(func() { close(arr) })
		c.SleepControl(func() { <-rel })
		return nil, nil, false
	})
	return arr, func() { relOnce.Do(func() { close(rel) }) }
}

// DropProduceConnections closes the connection of each of the next n produce
// requests without answering them.
func (e *Emulator) DropProduceConnections(n int) {
	e.controlProduce(n, func(c *kfake.Cluster) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, errors.New("keenlocal: connection dropped by fault"), true
	})
}

// controlProduce runs fn on each of the next n produce requests.
func (e *Emulator) controlProduce(n int, fn func(*kfake.Cluster) (kmsg.Response, error, bool)) {
	var left atomic.Int64
	left.Store(int64(n))
	c := e.cluster
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if left.Add(-1) < 0 {
			c.DropControl()
			return nil, nil, false
		}
		return fn(c)
	})
}

// FailDeletes answers the next n DELETE calls with status (429, 500, ...),
// with a Retry-After header when retryAfter is not "".
func (e *Emulator) FailDeletes(n, status int, retryAfter string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for range n {
		e.deleteFlt = append(e.deleteFlt, httpFault{status: status, retryAfter: retryAfter})
	}
}

// MoveLeaders moves the leader of every partition named in each of the next
// n produce requests to another broker, right after that request is
// answered, as a leader election during a sync would. The moves run on the
// cluster's own loop after the request; Wait on the result says how many
// partitions changed leader, and how many produce requests came after.
func (e *Emulator) MoveLeaders(n int) *LeaderMoves {
	m := &LeaderMoves{}
	c := e.cluster
	brokers := int32(e.opts.Brokers)
	var left atomic.Int64
	left.Store(int64(n))
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if m.moved.Load() > 0 {
			m.after.Add(1)
		}
		if left.Add(-1) < 0 {
			return nil, nil, false // keeps counting
		}
		req := kreq.(*kmsg.ProduceRequest)
		type tp struct {
			topic     string
			partition int32
		}
		var tps []tp
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, tp{t.Topic, p.Partition})
			}
		}
		// Moving a leader is an admin call on the loop this control
		// runs on: it must run in its own goroutine, owned by the
		// emulator, which waits for it before closing the brokers.
		e.movers.start(m, func() {
			for _, x := range tps {
				cur := c.LeaderFor(x.topic, x.partition)
				if cur < 0 {
					continue
				}
				if c.MoveTopicPartition(x.topic, x.partition, (cur+1)%brokers) == nil {
					m.moved.Add(1)
				}
			}
		})
		return nil, nil, false
	})
	return m
}

// LeaderMoves is the handle of MoveLeaders.
type LeaderMoves struct {
	wg    sync.WaitGroup
	moved atomic.Int64
	after atomic.Int64 // produce requests that arrived after a leader moved
}

// Wait waits for the moves started so far and returns how many partitions
// changed leader in all, and how many produce requests the brokers received
// after the first move.
func (m *LeaderMoves) Wait() (moved, producesAfter int) {
	m.wg.Wait()
	return int(m.moved.Load()), int(m.after.Load())
}

// movers owns the goroutines MoveLeaders starts: none starts once the
// brokers are stopping, and stopping waits for those running.
type movers struct {
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func (ms *movers) start(m *LeaderMoves, fn func()) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.stopped {
		return
	}
	ms.wg.Add(1)
	m.wg.Add(1)
	go func() {
		defer ms.wg.Done()
		defer m.wg.Done()
		fn()
	}()
}

func (ms *movers) stop() {
	ms.mu.Lock()
	ms.stopped = true
	ms.mu.Unlock()
	ms.wg.Wait()
	ms.mu.Lock()
	ms.stopped = false // StartKafka may bring the brokers back
	ms.mu.Unlock()
}
