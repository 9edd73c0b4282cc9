package main

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// TestView: packages start and end on a line each, a tick says what still
// runs, the output of a failing test is shown whole and passing tests'
// output not at all, and the exit code is go test's.
func TestView(t *testing.T) {
	events := make(chan event)
	tick := make(chan time.Time)
	var out bytes.Buffer
	done := make(chan int)
	go func() { done <- show(events, &out, tick) }()
	send := func(lines string) {
		for l := range strings.Lines(strings.TrimSpace(lines)) {
			var e event
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			events <- e
		}
	}
	send(`
{"Action":"start","Package":"p/a"}
{"Action":"run","Package":"p/a","Test":"TestOne"}
{"Action":"output","Package":"p/a","Test":"TestOne","Output":"quiet when it passes\n"}
{"Action":"pass","Package":"p/a","Test":"TestOne","Elapsed":0.1}
{"Action":"run","Package":"p/a","Test":"TestTwo/sub"}
{"Action":"start","Package":"p/none"}
{"Action":"output","Package":"p/none","Output":"?   p/none [no test files]\n"}
{"Action":"skip","Package":"p/none","Elapsed":0}`)
	tick <- time.Now()
	send(`
{"Action":"output","Package":"p/a","Test":"TestTwo/sub","Output":"    a_test.go:9: got 1, want 2\n"}
{"Action":"fail","Package":"p/a","Test":"TestTwo/sub","Elapsed":0.2}
{"Action":"output","Package":"p/a","Output":"FAIL\n"}
{"Action":"fail","Package":"p/a","Elapsed":1.5}
{"Action":"run","Package":"p/b","Test":"TestThree"}
{"Action":"pass","Package":"p/b","Test":"TestThree","Elapsed":0.1}
{"Action":"pass","Package":"p/b","Elapsed":0.4}`)
	close(events)
	if code := <-done; code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	got := out.String()
	for _, want := range []string{
		"start p/a\n",
		"...   still running: p/a (0s, 1 passed, on TestTwo)\n",
		"    a_test.go:9: got 1, want 2\n",
		"FAIL  p/a 1.5s\n",
		"start p/b\n",
		"ok    p/b 0.4s\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the view lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"quiet when it passes", "p/none"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("the view shows %q:\n%s", unwanted, got)
		}
	}
	// All passing: exit 0; text that is not JSON (a build error): exit 1.
	for in, want := range map[string]int{
		`{"Action":"run","Package":"p","Test":"T"}` + "\n" + `{"Action":"pass","Package":"p","Test":"T"}` + "\n" + `{"Action":"pass","Package":"p"}`: 0,
		"# p\n./a.go:1: syntax error\n": 1,
	} {
		if code := view(strings.NewReader(in), io.Discard, nil); code != want {
			t.Errorf("exit %d for %q, want %d", code, in, want)
		}
	}
}
