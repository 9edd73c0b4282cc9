// Command keenlocal runs a local Keen for trying and testing the connector:
// Kafka brokers behind SASL/PLAIN and TLS, and Keen's HTTP API, on loopback
// ports. It prints the connector config to use and the CA to trust, and
// stops on SIGINT or SIGTERM, removing its --ready-file. Run the built
// binary (make emulator, or bin/keenlocal), not go run, when it runs in the
// background: go run does not pass signals on to it. See package emulator
// for what it emulates.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kerr"

	"destination-keen/tools/keenlocal/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "keenlocal:", err)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("keenlocal", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts        emulator.Options
		readyFile   string
		verbose     bool
		failProduce int
		failCode    int16
		dropConns   int
		failDeletes int
		deleteCode  int
		retryAfter  string
	)
	fs.StringVar(&opts.ProjectID, "project-id", "keenlocal", "project ID (the Kafka SASL username)")
	fs.StringVar(&opts.APIKey, "api-key", "", "master API key (the Kafka SASL password); default: a random key")
	fs.StringVar(&opts.WriteKey, "write-key", "", "a non-master key: brokers accept it, the HTTP API answers 403 where a master key is needed")
	fs.IntVar(&opts.Brokers, "brokers", 3, "number of Kafka brokers")
	fs.IntVar(&opts.Partitions, "partitions", 3, "partitions per auto-created topic")
	fs.IntSliceVar(&opts.KafkaPorts, "kafka-ports", nil, "broker ports (default: random free ports)")
	fs.IntVar(&opts.HTTPPort, "http-port", 0, "HTTP API port (default: a random free port)")
	fs.StringVar(&opts.Dir, "dir", "", "folder for ca.pem (default: a temporary folder removed at exit)")
	fs.StringVar(&opts.DataDir, "data-dir", "", "persist broker data in this folder")
	fs.BoolVar(&opts.Blackhole, "blackhole", false, "acknowledge produce requests without storing them (benchmarks)")
	fs.DurationVar(&opts.Latency, "latency", 0, "hold every byte the brokers send for this long: each round trip to them costs that much more (e.g. 40ms, 100ms)")
	fs.StringVar(&readyFile, "ready-file", "", "once listening, write the connector config (plus ca_file) here as JSON, atomically")
	fs.BoolVar(&verbose, "verbose", false, "log rejections, deletes and failed logins to stderr")
	fs.IntVar(&failProduce, "fail-produce", 0, "fail the first N produce requests with --fail-produce-code")
	fs.Int16Var(&failCode, "fail-produce-code", kerr.NotLeaderForPartition.Code, "Kafka error code for --fail-produce (6 NOT_LEADER_FOR_PARTITION, 29 TOPIC_AUTHORIZATION_FAILED, ...)")
	fs.IntVar(&dropConns, "drop-produce-connections", 0, "close the connection of the first N produce requests")
	fs.IntVar(&failDeletes, "fail-deletes", 0, "answer the first N DELETE calls with --fail-deletes-status")
	fs.IntVar(&deleteCode, "fail-deletes-status", 429, "HTTP status for --fail-deletes")
	fs.StringVar(&retryAfter, "retry-after", "", "Retry-After header for --fail-deletes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if verbose {
		l := log.New(stderr, "keenlocal: ", log.LstdFlags)
		opts.Logf = l.Printf
	}
	e, err := emulator.Start(opts)
	if err != nil {
		return err
	}
	defer e.Close()
	if failProduce != 0 {
		kerrErr, ok := kerr.ErrorForCode(failCode).(*kerr.Error)
		if !ok {
			return fmt.Errorf("--fail-produce-code %d is not a Kafka error code", failCode)
		}
		e.FailProduce("", failProduce, kerrErr)
	}
	if dropConns > 0 {
		e.DropProduceConnections(dropConns)
	}
	if failDeletes > 0 {
		e.FailDeletes(failDeletes, deleteCode, retryAfter)
	}
	if readyFile != "" {
		if err := e.WriteReadyFile(readyFile); err != nil {
			return err
		}
		// A script that waits for the file must not find a stopped
		// emulator's ports in it.
		defer os.Remove(readyFile)
	}
	// Written once the ready file is: whoever reads this finds the file.
	cfg := e.Config()
	fmt.Fprintf(stdout, `keenlocal is running. Connector config:

  {"project_id": %q, "api_key": %q,
   "kafka_bootstrap_servers": %q,
   "api_url": %q}

Trust its CA:  export SSL_CERT_FILE=%s
Rejected events: %s
Stop with Ctrl-C.
`, cfg.ProjectID, cfg.APIKey, cfg.KafkaBootstrapServers, cfg.APIURL, cfg.CAFile, e.RejectedURL())
	<-ctx.Done()
	fmt.Fprintln(stdout, "keenlocal: stopping")
	return nil
}
