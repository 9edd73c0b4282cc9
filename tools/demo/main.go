// Command demo runs a full sync against the local Keen emulator and shows
// what landed: `make demo`. It starts the emulator in-process, runs the
// connector binary (check, then write of the sample sync in testdata/) as
// Airbyte would, and prints the states echoed and, per collection, the
// events Keen stored.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"destination-keen/tools/keenlocal/emulator"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	connector := pflag.String("connector", "bin/destination-keen", "the connector binary")
	data := pflag.String("data", "tools/demo/testdata", "folder with catalog.json, messages.jsonl and earlier.jsonl")
	pflag.Parse()

	e, err := emulator.Start(emulator.Options{ProjectID: "demo0project0000000000001"})
	if err != nil {
		return err
	}
	defer e.Close()
	dir, err := os.MkdirTemp("", "keen-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	cfg := e.Config()
	fmt.Fprintf(out, "== Local Keen: project %s\n   brokers %s (SASL/PLAIN over TLS)\n   API     %s\n\n", cfg.ProjectID, cfg.KafkaBootstrapServers, cfg.APIURL)
	configPath := filepath.Join(dir, "config.json")
	if err := os.WriteFile(configPath, cfg.JSON(nil), 0o600); err != nil {
		return err
	}
	connectorEnv := append(os.Environ(), "SSL_CERT_FILE="+e.CAFile())
	exe := func(stdin io.Reader, args ...string) ([]map[string]any, time.Duration, error) {
		cmd := exec.Command(*connector, args...)
		cmd.Env, cmd.Stdin, cmd.Stderr = connectorEnv, stdin, os.Stderr
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		began := time.Now()
		err := cmd.Run()
		took := time.Since(began)
		var msgs []map[string]any
		sc := bufio.NewScanner(&stdout)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				return nil, took, fmt.Errorf("the connector printed a line that is not JSON: %q", sc.Text())
			}
			m["raw"] = sc.Text()
			msgs = append(msgs, m)
		}
		return msgs, took, err
	}

	// An earlier sync left two users behind; overwrite will remove them.
	earlier, err := os.Open(filepath.Join(*data, "earlier.jsonl"))
	if err != nil {
		return err
	}
	defer earlier.Close()
	if _, _, err := exe(earlier, "write", "--config", configPath, "--catalog", filepath.Join(*data, "earlier_catalog.json")); err != nil {
		return fmt.Errorf("earlier sync: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := e.Collections(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== Before the sync, Keen holds (from an earlier sync): %s\n\n", describeCounts(before))

	fmt.Fprintf(out, "== destination-keen check --config config.json\n")
	msgs, took, err := exe(nil, "check", "--config", configPath)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	for _, m := range msgs {
		if cs, ok := m["connectionStatus"].(map[string]any); ok {
			fmt.Fprintf(out, "   CONNECTION_STATUS %v %v (%s)\n\n", cs["status"], orEmpty(cs["message"]), took.Round(time.Millisecond))
		}
	}

	input, err := os.Open(filepath.Join(*data, "messages.jsonl"))
	if err != nil {
		return err
	}
	defer input.Close()
	fmt.Fprintf(out, "== destination-keen write --config config.json --catalog catalog.json < messages.jsonl\n")
	msgs, took, err = exe(input, "write", "--config", configPath, "--catalog", filepath.Join(*data, "catalog.json"))
	for _, m := range msgs {
		switch m["type"] {
		case "LOG":
			l := m["log"].(map[string]any)
			fmt.Fprintf(out, "   LOG   %-5v %v\n", l["level"], l["message"])
		case "STATE", "TRACE":
			fmt.Fprintf(out, "   %s\n", m["raw"])
		}
	}
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	fmt.Fprintf(out, "   exit 0 after %s\n\n", took.Round(time.Millisecond))

	cols, err := e.Collections(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(cols))
	for c := range cols {
		names = append(names, c)
	}
	sort.Strings(names)
	fmt.Fprintf(out, "== What landed in Keen (extraction per collection)\n")
	for _, c := range names {
		evs, err := e.Events(ctx, c)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "   %s: %d events\n", c, len(evs))
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			fmt.Fprintf(out, "      %s\n", b)
		}
	}
	rej, err := e.Rejected(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== Events Keen would have dropped: %d\n", len(rej))
	for _, r := range rej {
		fmt.Fprintf(out, "   %s: %s\n", r.Collection, r.Reason)
	}
	if len(rej) > 0 {
		return errors.New("some events broke Keen's rules")
	}
	return nil
}

// describeCounts lists collections and their event counts, sorted.
func describeCounts(counts map[string]int) string {
	names := make([]string, 0, len(counts))
	for c := range counts {
		names = append(names, c)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, c := range names {
		parts[i] = fmt.Sprintf("%s (%d events)", c, counts[c])
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func orEmpty(v any) string {
	if v == nil {
		return ""
	}
	return strings.TrimSpace(fmt.Sprint(v))
}
