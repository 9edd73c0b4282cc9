package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"destination-keen/tools/keenlocal/emulator"
)

// TestSIGTERM: the platform cancels a sync with SIGTERM while the source is
// still sending. The connector stops reading, echoes the states whose
// records landed, and exits non-zero, promptly.
func TestSIGTERM(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	// Wait for the first state: its record has landed.
	var out bytes.Buffer
	buf := make([]byte, 4096)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), `"type":"STATE"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no state within 20s: %s", out.String())
		}
		n, err := stdout.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A connector that does not stop is killed, and fails the test below.
	defer time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() }).Stop()
	rest, _ := io.ReadAll(stdout)
	out.Write(rest)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1 after SIGTERM, got %v", err)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Fatalf("took %v to stop", d)
	}
	if !strings.Contains(out.String(), `"failure_type":"transient_error"`) || !strings.Contains(out.String(), "stopped by a signal") {
		t.Fatalf("want a transient_error TRACE:\n%s", out.String())
	}
	stdin.Close()
}

// TestSIGTERMFlushes: a signal that comes while records are in flight
// stops the input but not their delivery: the flush waits for their
// acknowledgements and echoes the state they complete before the TRACE.
func TestSIGTERMFlushes(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	arrived, release := e.emu.HoldProduce()
	t.Cleanup(release)
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	defer stdin.Close()
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	select {
	case <-arrived: // record 1 is at the brokers, unanswered: its state cannot be out
	case <-time.After(20 * time.Second):
		t.Fatal("no produce request within 20s")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Release the brokers' answer only once the connector says it stopped
	// reading and is flushing.
	r := bufio.NewReader(stdout)
	var out strings.Builder
	for !strings.Contains(out.String(), "Stopping on a signal") {
		l, err := r.ReadString('\n')
		out.WriteString(l)
		if err != nil {
			t.Fatalf("%v before the connector said it was stopping:\n%s", err, out.String())
		}
	}
	if strings.Contains(out.String(), `"type":"STATE"`) {
		t.Fatalf("a state went out before its record was acknowledged:\n%s", out.String())
	}
	release()
	defer time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() }).Stop()
	rest, _ := io.ReadAll(r)
	out.Write(rest)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1 after SIGTERM, got %v", err)
	}
	s := out.String()
	state, trace := strings.Index(s, `"type":"STATE"`), strings.Index(s, `"failure_type":"transient_error"`)
	if state < 0 || trace < 0 || state > trace {
		t.Fatalf("want the state acknowledged during the flush, then the TRACE:\n%s", s)
	}
	if n := len(e.events("a")); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	// The counts say what was applied: the one record read.
	if !strings.Contains(s, `Stream \"a\" -> \"a\": 1 record;`) || !strings.Contains(s, "Sync summary: 1 record read, 1 acknowledged") {
		t.Fatalf("the counts after a signal:\n%s", s)
	}
}

// TestSIGTERMWhileReadingTheConfig: a config path that blocks (a FIFO no
// one writes) does not make the connector deaf to the platform's SIGTERM.
func TestSIGTERMWhileReadingTheConfig(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	fifo := filepath.Join(e.dir, "config.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "check", "--config", fifo)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once the connector holds the FIFO open for reading, opening it for
	// writing no longer blocks: the connector is then blocked in its read.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	began := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("SIGTERM did not end a check blocked reading its config")
	}
	if !strings.Contains(out.String(), `"status":"FAILED"`) || !strings.Contains(out.String(), "Stopped while reading the config file") {
		t.Fatalf("after %v: %s", time.Since(began), out.String())
	}
}

// TestKill9: a sync killed mid-way has echoed no state ahead of its records.
func TestKill9(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	go func() {
		w := bufio.NewWriter(stdin)
		for n := 1; n <= 200000; n++ {
			fmt.Fprintln(w, rec("a", fmt.Sprintf(`{"n":%d}`, n), 1))
			if n%100 == 0 {
				fmt.Fprintln(w, streamState("a", strconv.Itoa(n)))
			}
		}
		w.Flush()
	}()
	sc := bufio.NewScanner(stdout)
	states := 0
	last := 0
	for sc.Scan() {
		var m struct {
			State struct {
				Stream struct {
					StreamState struct {
						Cursor int `json:"cursor"`
					} `json:"stream_state"`
				} `json:"stream"`
			} `json:"state"`
			Type string `json:"type"`
		}
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Type == "STATE" {
			states++
			last = m.State.Stream.StreamState.Cursor
			if states == 20 {
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}
	_ = cmd.Wait()
	if states < 20 {
		t.Fatalf("only %d states before the kill", states)
	}
	got := byField(e.events("a"), "n")
	for n := 1; n <= last; n++ {
		if got[strconv.Itoa(n)] == nil {
			t.Fatalf("state %d was echoed but record %d is not in Keen", last, n)
		}
	}
}

// TestBrokenPipe: the platform stops reading stdout; the connector stops
// promptly with a non-zero exit and says why on stderr.
func TestBrokenPipe(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, stderr := e.startSync(t, cat)
	stdout.Close()
	go func() {
		w := bufio.NewWriter(stdin)
		for n := 1; n <= 2_000_000; n++ {
			if _, err := fmt.Fprintln(w, rec("a", fmt.Sprintf(`{"n":%d}`, n), 1)); err != nil {
				return
			}
			if n%100 == 0 {
				fmt.Fprintln(w, streamState("a", strconv.Itoa(n)))
			}
		}
		w.Flush()
		stdin.Close()
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("want exit 1, got %v", err)
		}
		if !strings.Contains(stderr.String(), "cannot write to stdout") {
			t.Fatalf("stderr: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after stdout closed")
	}
}

// TestSilentStdin: a source that keeps stdin open and says nothing costs no
// CPU, and the states of what it sent still come out.
func TestSilentStdin(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && !strings.Contains(sc.Text(), `"type":"STATE"`) {
	}
	ticks := func() int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return u + s
	}
	before := ticks()
	time.Sleep(time.Second)
	if used := ticks() - before; used > 20 { // clock ticks of 10 ms: a busy loop would use about 100
		t.Fatalf("%d clock ticks of CPU in a second of silence", used)
	}
	stdin.Close()
	for sc.Scan() {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestFirstProgressLine: the first progress line comes about 5 s after the
// start, not 30 s, with what was read, acknowledged and echoed.
func TestFirstProgressLine(t *testing.T) {
	e := newEnv(t, emulator.Options{})
	cat := e.write("catalog.json", catalogDoc(cstream{name: "a", mode: "append"}))
	began := time.Now()
	cmd, stdin, stdout, _ := e.startSync(t, cat)
	fmt.Fprint(stdin, lines(rec("a", `{"n":1}`, 1), streamState("a", "1")))
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Progress: ") {
				got <- sc.Text()
				break
			}
		}
		close(got)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-got:
		if !ok {
			t.Fatal("the output ended without a progress line")
		}
		if d := time.Since(began); d > 12*time.Second {
			t.Errorf("the first progress line came after %v", d)
		}
		if !strings.Contains(line, "Progress: 1 record read") || !strings.Contains(line, "1 acknowledged by Keen's brokers, 1 state read, 1 echoed") {
			t.Errorf("progress line: %s", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no progress line within 20 s")
	}
	stdin.Close()
	_ = cmd.Wait()
}
