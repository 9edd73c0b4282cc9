// Command testview shows a `go test -json` run as it goes: a line when a
// package starts, its result when it ends, and, every 30 s while packages
// run, which ones and the test each is on; the output of a failing test or
// package in full. It reads the JSON on stdin and exits 1 when a test or a
// package failed (or the input was not test JSON), so that
//
//	set -o pipefail; go test -json ./... | go run ./tools/testview
//
// fails as `go test` does.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time    time.Time
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type pkgState struct {
	started time.Time
	passed  int               // tests passed so far (top level and subtests)
	current string            // the last test started
	output  map[string]string // per test ("" for the package), kept until it passes
}

func main() {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	os.Exit(view(os.Stdin, os.Stdout, tick.C))
}

// view reads events from r and writes the view to w, with a line on what
// still runs at each tick; it returns the exit code.
func view(r io.Reader, w io.Writer, tick <-chan time.Time) int {
	events := make(chan event)
	go scan(r, events)
	return show(events, w, tick)
}

// scan sends the events of r; a line that is not test JSON (a build error,
// say) goes as an event of Action "text", to be shown as it is.
func scan(r io.Reader, events chan<- event) {
	defer close(events)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			e = event{Action: "text", Output: sc.Text() + "\n"}
		}
		events <- e
	}
}

// show writes the view of events to w; it returns the exit code.
func show(events <-chan event, w io.Writer, tick <-chan time.Time) int {
	running := map[string]*pkgState{}
	failed := false
	for {
		select {
		case e, ok := <-events:
			if !ok {
				if failed {
					return 1
				}
				return 0
			}
			switch e.Action {
			case "text":
				fmt.Fprint(w, e.Output)
				failed = true // go test -json writes nothing else but a failure
				continue
			case "build-output":
				fmt.Fprint(w, e.Output)
				continue
			case "build-fail":
				failed = true
				continue
			}
			if e.Package == "" {
				continue
			}
			p := running[e.Package]
			if p == nil {
				p = &pkgState{started: time.Now(), output: map[string]string{}}
				running[e.Package] = p
			}
			switch e.Action {
			case "run":
				if p.current == "" {
					fmt.Fprintf(w, "start %s\n", e.Package)
				}
				p.current = e.Test
			case "output":
				p.output[e.Test] += e.Output
			case "pass", "skip":
				if e.Test == "" {
					if e.Action == "pass" {
						fmt.Fprintf(w, "ok    %s %.1fs\n", e.Package, e.Elapsed)
					}
					delete(running, e.Package)
					continue
				}
				if e.Action == "pass" {
					p.passed++
				}
				delete(p.output, e.Test)
			case "fail":
				failed = true
				if e.Test != "" {
					fmt.Fprint(w, p.output[e.Test])
					delete(p.output, e.Test)
					continue
				}
				fmt.Fprint(w, p.output[""])
				fmt.Fprintf(w, "FAIL  %s %.1fs\n", e.Package, e.Elapsed)
				delete(running, e.Package)
			}
		case <-tick:
			var names []string
			for name, p := range running {
				if p.current != "" {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			var parts []string
			for _, name := range names {
				p := running[name]
				parts = append(parts, fmt.Sprintf("%s (%s, %d passed, on %s)", name, time.Since(p.started).Round(time.Second), p.passed, strings.SplitN(p.current, "/", 2)[0]))
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "...   still running: %s\n", strings.Join(parts, "; "))
			}
		}
	}
}
