// Command loadgen measures the connector's write path end to end: N records
// of about 450 bytes, generated on the fly, go through `destination-keen
// write` (a child process) into the emulator in blackhole mode, and the same
// events go through two plain producers, each a child process of its own: a
// sarama producer with the connector's settings but without idempotence
// (the floor for this client library) and an idempotent franz-go producer.
// It does so at each added round trip (the emulator's link delay: 0, 40 and
// 100 ms by default) and prints records/s, MB/s, CPU-µs per record and peak
// RSS for each, as a table, and the connector's ratios. `make bench` runs
// it.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"destination-keen/internal/config"
	"destination-keen/internal/sink"
	"destination-keen/tools/keenlocal/emulator"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		if err := floor(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen floor:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// record writes the data of record i: about 500 bytes of typical event JSON.
func record(b []byte, i int) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"user":{"id":"u-`...)
	b = strconv.AppendInt(b, int64(i%100000), 10)
	b = append(b, `","email":"someone.`...)
	b = strconv.AppendInt(b, int64(i%100000), 10)
	b = append(b, `@example.com","plan":"pro","country":"DE","signup":"2021-04-01T10:00:00Z"},"page":{"path":"/docs/getting-started/install","referrer":"https://www.example.org/search?q=keen+analytics","title":"Install | Docs"},"device":{"os":"iOS","version":"17.1","model":"iPhone15,2","app":"4.12.0"},"amount":19.99,"currency":"EUR","tags":["web","campaign-42","beta"],"session":"`...)
	b = strconv.AppendInt(b, int64(i*7919%1000003), 16)
	b = append(b, `","updated_at":"2024-03-01T10:15:00.`...)
	b = strconv.AppendInt(b, int64(100+i%900), 10)
	b = append(b, `Z"}`...)
	return b
}

const catalog = `{"streams":[{"stream":{"name":"bench","json_schema":{"type":"object","properties":{"updated_at":{"type":"string","format":"date-time"}}},"supported_sync_modes":["incremental"]},"sync_mode":"incremental","cursor_field":["updated_at"],"destination_sync_mode":"append"}]}`

type usage struct {
	name    string
	records int
	wall    time.Duration
	cpu     time.Duration
	rssKiB  int64
	driver  time.Duration // CPU the driver (brokers, input) spent meanwhile
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (u usage) rate() float64 { return float64(u.records) / u.wall.Seconds() }

// measure runs cmd to its end; during, if not nil, runs between the start
// and the wait (reading the child's stdout to its end).
func measure(name string, n int, cmd *exec.Cmd, during func() error) (usage, error) {
	began, cpu0 := time.Now(), selfCPU()
	if err := cmd.Start(); err != nil {
		return usage{}, fmt.Errorf("%s: %w", name, err)
	}
	var derr error
	if during != nil {
		derr = during()
	}
	if err := cmd.Wait(); err != nil {
		return usage{}, fmt.Errorf("%s: %w", name, err)
	}
	if derr != nil {
		return usage{}, fmt.Errorf("%s: %w", name, derr)
	}
	u := usage{name: name, records: n, wall: time.Since(began), driver: selfCPU() - cpu0}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.rssKiB = ru.Maxrss
	}
	return u, nil
}

func run() error {
	n := pflag.IntP("records", "n", 200_000, "records per run")
	connector := pflag.String("connector", "bin/destination-keen", "the connector binary")
	stateEvery := pflag.Int("state-every", 1000, "a STATE after every this many records")
	out := pflag.String("out", "", "also append the results to this file")
	rounds := pflag.Int("rounds", 3, "rounds per added round trip (fresh brokers each); medians are reported")
	producers := pflag.Int("producers", 0, "the connector's kafka_producers (0: its own choice)")
	latencies := pflag.DurationSlice("latency", []time.Duration{0, 40 * time.Millisecond, 100 * time.Millisecond}, "added round trips to measure at")
	soakN := pflag.Int("soak", 0, "instead: a soak of this many records (and one of a tenth as many), checking memory, state gaps and goroutines")
	pflag.Parse()
	if *soakN > 0 {
		return soak(*connector, *soakN, *out)
	}

	dir, catPath, err := workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}

	// results[latency][client] holds one usage per round.
	results := make([]map[string][]usage, len(*latencies))
	for li, lat := range *latencies {
		results[li] = map[string][]usage{}
		for r := range *rounds {
			// A fresh emulator each round: a broker that has taken millions
			// of records answers more slowly, which would favour whoever runs
			// first. The order of the clients turns from round to round.
			e, cfgPath, err := blackhole(dir, li*(*rounds)+r, lat, *producers)
			if err != nil {
				return err
			}
			httpsPath := filepath.Join(dir, fmt.Sprintf("config-https-%d.json", li*(*rounds)+r))
			if err := os.WriteFile(httpsPath, e.Config().JSON(map[string]any{"transport": "https"}), 0o600); err != nil {
				e.Close()
				return err
			}
			cfg := e.Config()
			env := append(os.Environ(), "SSL_CERT_FILE="+cfg.CAFile)
			runs := []func() (usage, error){
				func() (usage, error) { return runFloor(self, env, cfg, "sarama", *n) },
				func() (usage, error) { return runFloor(self, env, cfg, "franz-go", *n) },
				func() (usage, error) {
					u, _, _, err := runConnector(nameConnector, env, cfgPath, catPath, *connector, *n, *stateEvery)
					return u, err
				},
				func() (usage, error) {
					u, _, _, err := runConnector(nameHTTPS, env, httpsPath, catPath, *connector, *n, *stateEvery)
					return u, err
				},
			}
			for k := range runs {
				u, err := runs[(k+r)%len(runs)]()
				if err != nil {
					e.Close()
					return fmt.Errorf("%s added round trip: %w", lat, err)
				}
				results[li][u.name] = append(results[li][u.name], u)
			}
			e.Close()
		}
	}
	report := table(results, *latencies, *n, *stateEvery, *rounds)
	fmt.Print(report)
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(f, "\n# loadgen %s\n%s", time.Now().UTC().Format(time.RFC3339), report)
	}
	return nil
}

// The clients measured, in the table's order.
const (
	nameConnector = "destination-keen"
	nameHTTPS     = "destination-keen-https"
	nameSarama    = "sarama"
	nameFranz     = "franz-go"
)

var clientNotes = map[string]string{
	nameConnector: "destination-keen",
	nameHTTPS:     "destination-keen, transport https",
	nameSarama:    "sarama, tuned, not idempotent",
	nameFranz:     "franz-go, idempotent",
}

// table prints the medians per added round trip and client, and the
// ratios the connector is held to.
func table(results []map[string][]usage, latencies []time.Duration, n, stateEvery, rounds int) string {
	var b strings.Builder
	size := len(floorEvent(nil, 1))
	fmt.Fprintf(&b, "%d records, events of about %d bytes, SASL/PLAIN + TLS, lz4, acks=all, a STATE every %d; blackhole brokers in the driver process; median of %d rounds\n",
		n, size, stateEvery, rounds)
	fmt.Fprintf(&b, "| added round trip | client | records/s | MB/s | CPU-µs per record | peak RSS |\n|---|---|---|---|---|---|\n")
	med := func(li int, name string, f func(usage) float64) float64 {
		var xs []float64
		for _, u := range results[li][name] {
			xs = append(xs, f(u))
		}
		return median(xs)
	}
	rate := func(u usage) float64 { return u.rate() }
	cpu := func(u usage) float64 { return float64(u.cpu.Microseconds()) / float64(u.records) }
	rss := func(u usage) float64 { return float64(u.rssKiB) / 1024 }
	for li, lat := range latencies {
		for _, name := range []string{nameConnector, nameHTTPS, nameSarama, nameFranz} {
			r := med(li, name, rate)
			fmt.Fprintf(&b, "| %s | %s | %.1fk | %.1f | %.2f | %.0f MiB |\n", fmtLatency(lat), clientNotes[name],
				r/1000, r*float64(size)/1e6, med(li, name, cpu), med(li, name, rss))
		}
	}
	loop := -1
	for li, lat := range latencies {
		if lat == 0 {
			loop = li
		}
	}
	for li, lat := range latencies {
		conn := med(li, nameConnector, rate)
		var ratios []string
		ratios = append(ratios, fmt.Sprintf("%.2fx sarama", conn/med(li, nameSarama, rate)),
			fmt.Sprintf("%.2fx franz-go", conn/med(li, nameFranz, rate)))
		if lat == 0 {
			ratios = append(ratios, fmt.Sprintf("CPU per record %.2fx sarama's", med(li, nameConnector, cpu)/med(li, nameSarama, cpu)))
		} else if loop >= 0 {
			ratios = append(ratios, fmt.Sprintf("%.2fx its own loopback figure", conn/med(loop, nameConnector, rate)))
		}
		var peak, peakHTTPS float64
		for _, u := range results[li][nameConnector] {
			peak = max(peak, rss(u))
		}
		for _, u := range results[li][nameHTTPS] {
			peakHTTPS = max(peakHTTPS, rss(u))
		}
		fmt.Fprintf(&b, "%s: destination-keen at %s; its highest peak RSS %.0f MiB; over HTTPS %.2fx its Kafka rate, %.2fx its CPU per record, highest peak RSS %.0f MiB\n",
			fmtLatency(lat), strings.Join(ratios, ", "), peak, med(li, nameHTTPS, rate)/conn, med(li, nameHTTPS, cpu)/med(li, nameConnector, cpu), peakHTTPS)
	}
	return b.String()
}

func fmtLatency(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// workDir makes a temporary folder holding the benchmark's catalog.
func workDir() (dir, catPath string, err error) {
	if dir, err = os.MkdirTemp("", "loadgen-"); err != nil {
		return "", "", err
	}
	catPath = filepath.Join(dir, "catalog.json")
	if err := os.WriteFile(catPath, []byte(catalog), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	return dir, catPath, nil
}

// blackhole starts a fresh emulator in blackhole mode, with latency added
// to each round trip, and writes the connector config for it into dir.
func blackhole(dir string, n int, latency time.Duration, producers int) (*emulator.Emulator, string, error) {
	e, err := emulator.Start(emulator.Options{Blackhole: true, Latency: latency})
	if err != nil {
		return nil, "", err
	}
	cfg := e.Config()
	cfgPath := filepath.Join(dir, fmt.Sprintf("config-%d.json", n))
	if err := os.WriteFile(cfgPath, cfg.JSON(map[string]any{"kafka_producers": producers}), 0o600); err != nil {
		e.Close()
		return nil, "", err
	}
	return e, cfgPath, nil
}

// inputBlock is every records RECORD lines and then one STATE.
func inputBlock(every int) []byte {
	var b []byte
	for i := 1; i <= every; i++ {
		b = append(b, `{"type":"RECORD","record":{"stream":"bench","data":`...)
		b = record(b, i)
		b = append(b, `,"emitted_at":1700000000000}}`...)
		b = append(b, '\n')
	}
	return append(b, `{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"bench"},"stream_state":{"id":1}}}}`+"\n"...)
}

// runFloor runs one client alone (a child process: this program's floor
// command) sending the same events, and returns what it used.
func runFloor(self string, env []string, cfg emulator.ConnectorConfig, client string, n int) (usage, error) {
	fl := exec.Command(self, "floor", "--client", client, "--records", strconv.Itoa(n), "--brokers", cfg.KafkaBootstrapServers,
		"--project", cfg.ProjectID, "--ca", cfg.CAFile)
	fl.Env = append(env, "LOADGEN_KEY="+cfg.APIKey)
	fl.Stderr = os.Stderr
	return measure(client, n, fl, nil)
}

// runConnector runs one sync of n records through the connector, fed by a
// pipe as the platform feeds it, and returns what it used, the longest gap
// between two echoed states and its goroutine-count log line.
func runConnector(name string, env []string, cfgPath, catPath, connector string, n, stateEvery int) (usage, time.Duration, string, error) {
	cmd := exec.Command(connector, "write", "--config", cfgPath, "--catalog", catPath)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return usage{}, 0, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return usage{}, 0, "", err
	}
	var debug string // the connector's goroutine count line
	var states atomic.Int64
	var lastState atomic.Int64
	var maxGap atomic.Int64
	readDone := make(chan error, 1)
	startReader := func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 16<<20)
		prev := time.Now()
		for sc.Scan() {
			l := sc.Bytes()
			if strings.Contains(string(l[:min(len(l), 40)]), `"type":"STATE"`) {
				now := time.Now()
				if gap := now.Sub(prev); int64(gap) > maxGap.Load() && states.Load() > 0 {
					maxGap.Store(int64(gap))
				}
				prev = now
				states.Add(1)
				lastState.Store(now.UnixNano())
			} else if strings.Contains(string(l), `"type":"TRACE"`) {
				fmt.Fprintln(os.Stderr, string(l))
			} else if strings.Contains(string(l), `Goroutines: `) {
				debug = string(l)
			}
		}
		readDone <- sc.Err()
	}
	// The input is built once, one state's worth of records, and written
	// again and again, so that the driver spends next to no CPU on it (the
	// floor builds its events in its own process).
	block := inputBlock(stateEvery)
	startWriter := func() {
		for i := 0; i < n; i += stateEvery {
			if _, err := stdin.Write(block); err != nil {
				return
			}
		}
		_ = stdin.Close()
	}
	connU, err := measure(name, n, cmd, func() error {
		go startReader()
		go startWriter()
		if err := <-readDone; err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	})
	if err != nil {
		return usage{}, 0, "", err
	}
	if want := int64(n / stateEvery); states.Load() != want {
		return usage{}, 0, "", fmt.Errorf("the connector echoed %d states, want %d", states.Load(), want)
	}

	return connU, time.Duration(maxGap.Load()), debug, nil
}

// floorEvent is the event the connector makes of record i, built cheaply:
// the record's data with keen.timestamp.
func floorEvent(b []byte, i int) []byte {
	b = record(b, i)
	return append(b[:len(b)-1], `,"keen":{"timestamp":"2024-03-01T10:15:00.100Z"}}`...)
}

// floor sends the connector's events through one client and waits for
// every acknowledgement: sarama configured as the connector configures it
// but without idempotence, so with five requests in flight per broker
// (the floor for this library), or franz-go with its defaults, which are
// idempotent with five requests in flight, plus lz4.
func floor(args []string) error {
	fs := pflag.NewFlagSet("floor", pflag.ContinueOnError)
	client := fs.String("client", nameSarama, "sarama or franz-go")
	n := fs.Int("records", 1_000_000, "records")
	brokers := fs.String("brokers", "", "bootstrap servers")
	project := fs.String("project", "", "project id")
	caFile := fs.String("ca", "", "CA file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &config.Config{ProjectID: *project, APIKey: config.Secret(os.Getenv("LOADGEN_KEY")), Brokers: strings.Split(*brokers, ",")}
	switch *client {
	case nameSarama:
		return floorSarama(cfg, pool, *n)
	case nameFranz:
		return floorFranz(cfg, pool, *n)
	}
	return fmt.Errorf("unknown client %q", *client)
}

func floorSarama(cfg *config.Config, pool *x509.CertPool, n int) error {
	sc, err := sink.SaramaConfig(cfg, sink.Options{RootCAs: pool}, false)
	if err != nil {
		return err
	}
	p, err := sarama.NewAsyncProducer(cfg.Brokers, sc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	acked := make(chan error, 1)
	go func() {
		got := 0
		for got < n {
			select {
			case <-p.Successes():
				got++
			case pe := <-p.Errors():
				acked <- pe.Err
				return
			case <-ctx.Done():
				return
			}
		}
		acked <- nil
	}()
	for i := 1; i <= n; i++ {
		p.Input() <- &sarama.ProducerMessage{Topic: "bench", Value: sarama.ByteEncoder(floorEvent(make([]byte, 0, 600), i))}
	}
	err = <-acked
	p.AsyncClose()
	for range p.Successes() {
	}
	return err
}

func floorFranz(cfg *config.Config, pool *x509.CertPool, n int) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(plain.Auth{User: cfg.ProjectID, Pass: cfg.APIKey.Reveal()}.AsMechanism()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.AllowAutoTopicCreation(),
		kgo.DefaultProduceTopic("bench"),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	var first atomic.Pointer[error]
	for i := 1; i <= n; i++ {
		cl.Produce(ctx, &kgo.Record{Value: floorEvent(make([]byte, 0, 600), i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				first.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err := first.Load(); err != nil {
		return *err
	}
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

// soak runs the connector over n/10 and then n records, a STATE every 100,
// and checks what must hold however long a sync runs: peak RSS at n within
// 10% of peak RSS at n/10, no gap over 5 s between two echoed states while
// acknowledgements flow, and the goroutines back to their starting count.
func soak(connector string, n int, out string) error {
	dir, catPath, err := workDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	type run struct {
		u          usage
		gap        time.Duration
		goroutines string
	}
	var runs []run
	for i, records := range []int{n / 10, n} {
		e, cfgPath, err := blackhole(dir, i, 0, 0)
		if err != nil {
			return err
		}
		cfg := e.Config()
		// The connector reports its goroutines at the end only when asked:
		// it then waits for the producer's connections to wind down.
		u, gap, g, err := runConnector(nameConnector, append(os.Environ(), "SSL_CERT_FILE="+cfg.CAFile, "DESTINATION_KEEN_GOROUTINE_REPORT=1"), cfgPath, catPath, connector, records, 100)
		e.Close()
		if err != nil {
			return err
		}
		runs = append(runs, run{u, gap, g})
	}
	var report strings.Builder
	ok := true
	check := func(pass bool, format string, args ...any) {
		verdict := "ok  "
		if !pass {
			verdict, ok = "FAIL", false
		}
		fmt.Fprintf(&report, "%s "+format+"\n", append([]any{verdict}, args...)...)
	}
	fmt.Fprintf(&report, "soak: records of about %d bytes, a STATE every 100, SASL/PLAIN + TLS, blackhole brokers\n", len(record(nil, 1)))
	for _, r := range runs {
		fmt.Fprintf(&report, "     %9d records: %s, %.0f records/s, %.2f CPU-µs/record, peak RSS %d MiB, longest gap between states %s\n",
			r.u.records, r.u.wall.Round(time.Millisecond), r.u.rate(), float64(r.u.cpu.Microseconds())/float64(r.u.records), r.u.rssKiB/1024, r.gap.Round(time.Millisecond))
	}
	small, big := runs[0], runs[1]
	growth := float64(big.u.rssKiB)/float64(small.u.rssKiB) - 1
	check(growth <= 0.10, "peak RSS at %d records is %+.1f%% of the one at %d (limit +10%%)", big.u.records, growth*100, small.u.records)
	check(big.gap <= 5*time.Second && small.gap <= 5*time.Second, "longest gap between two echoed states: %s (limit 5s)", max(big.gap, small.gap).Round(time.Millisecond))
	var g0, g1 int
	_, perr := fmt.Sscanf(goroutineCounts(big.goroutines), "%d %d", &g0, &g1)
	check(perr == nil && g1 <= g0, "goroutines: %s", goroutineCounts(big.goroutines))
	fmt.Print(report.String())
	if out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(f, "\n# soak %s\n%s", time.Now().UTC().Format(time.RFC3339), report.String())
	}
	if !ok {
		return errors.New("the soak failed")
	}
	return nil
}

// goroutineCounts pulls "start end" out of the connector's log line
// "Goroutines: N at start, M at the end".
func goroutineCounts(line string) string {
	i := strings.Index(line, "Goroutines: ")
	if i < 0 {
		return "(no count logged)"
	}
	var a, b int
	if _, err := fmt.Sscanf(line[i:], "Goroutines: %d at start, %d at the end", &a, &b); err != nil {
		return "(unreadable count)"
	}
	return fmt.Sprintf("%d %d", a, b)
}
