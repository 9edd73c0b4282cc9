package checkpoint

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestStatesWaitForTheirRecords(t *testing.T) {
	var out []string
	tr := New(func(l []byte) error { out = append(out, string(l)); return nil })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tr.State([]byte("s0"))) // no records before it: out at once
	r1, r2, r3 := tr.Next(), tr.Next(), tr.Next()
	must(tr.State([]byte("s1")))
	r4 := tr.Next()
	must(tr.State([]byte("s2")))
	if strings.Join(out, ",") != "s0" {
		t.Fatalf("got %v", out)
	}
	must(tr.Done(r3))
	must(tr.Done(r1))
	if strings.Join(out, ",") != "s0" {
		t.Fatalf("s1 released with record 2 unfinished: %v", out)
	}
	must(tr.Done(r4))
	if len(out) != 1 {
		t.Fatalf("s2 released before s1: %v", out)
	}
	must(tr.Done(r2))
	if strings.Join(out, ",") != "s0,s1,s2" {
		t.Fatalf("got %v", out)
	}
	if s := tr.Stats(); s.Records != 4 || s.Finished != 4 || s.Emitted != 3 || s.Held != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestEmitErrorSticks(t *testing.T) {
	tr := New(func([]byte) error { return fmt.Errorf("broken pipe") })
	if err := tr.State([]byte("s")); err == nil {
		t.Fatal("want the emit error")
	}
	if err := tr.State([]byte("t")); err == nil {
		t.Fatal("the error must stick")
	}
}

// TestConcurrentAcks: acks from many goroutines in random order; every
// state comes out once, in order, and never before its records.
func TestConcurrentAcks(t *testing.T) {
	const records, every = 20000, 7
	var mu sync.Mutex
	var out []int
	finished := map[uint64]bool{}
	after := map[int]uint64{}
	var early string // the first state out before one of its records
	tr := New(func(l []byte) error {
		var n int
		fmt.Sscanf(string(l), "%d", &n)
		mu.Lock()
		defer mu.Unlock()
		for s := uint64(1); s <= after[n] && early == ""; s++ {
			if !finished[s] {
				early = fmt.Sprintf("state %d out before record %d", n, s)
			}
		}
		out = append(out, n)
		return nil
	})
	seqs := make([]uint64, 0, records)
	states := 0
	for i := range records {
		seqs = append(seqs, tr.Next())
		if i%every == 0 {
			mu.Lock()
			after[states] = seqs[len(seqs)-1]
			mu.Unlock()
			if err := tr.State(fmt.Appendf(nil, "%d", states)); err != nil {
				t.Fatal(err)
			}
			states++
		}
	}
	rand.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(seqs); i += 4 {
				mu.Lock()
				finished[seqs[i]] = true
				mu.Unlock()
				if err := tr.Done(seqs[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if early != "" {
		t.Fatal(early)
	}
	if len(out) != states {
		t.Fatalf("%d states out, want %d", len(out), states)
	}
	for i, n := range out {
		if n != i {
			t.Fatalf("state %d came out at position %d", n, i)
		}
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		state, kind, name, ns, err string
	}{
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":"users","namespace":"pub"},"stream_state":{}}}`, "STREAM", "users", "pub", ""},
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":"users","namespace":null}}}`, "STREAM", "users", "", ""},
		{`{"type":"GLOBAL","global":{}}`, "GLOBAL", "", "", ""},
		{`{"data":{"cursor":1}}`, "LEGACY", "", "", ""},
		{`{"type":"STREAM"}`, "", "", "", "needs a stream object"},
		{`{"type":"STREAM","stream":{}}`, "", "", "", "needs stream.stream_descriptor"},
		{`{"type":"PER_STREAM"}`, "", "", "", "unknown state type"},
		// One rule for every kind and field.
		{`{"type":null,"data":{}}`, "LEGACY", "", "", ""},
		{`{"type":"LEGACY"}`, "LEGACY", "", "", ""},
		{`{"type":1}`, "", "", "", "the state's type is a JSON number, not STREAM, GLOBAL or LEGACY"},
		{`{"type":[]}`, "", "", "", "the state's type is a JSON array"},
		{`{"type":"FOO"}`, "", "", "", "unknown state type"},
		{`{"type":"GLOBAL","global":{"shared_state":{"lsn":1},"stream_states":[]}}`, "GLOBAL", "", "", ""},
		{`{"type":"GLOBAL"}`, "", "", "", "a GLOBAL state needs a global object"},
		{`{"type":"GLOBAL","global":null}`, "", "", "", "a GLOBAL state needs a global object"},
		{`{"type":"GLOBAL","global":"x"}`, "", "", "", "a GLOBAL state needs a global object"},
		{`{"type":"GLOBAL","global":[]}`, "", "", "", "a GLOBAL state needs a global object"},
		{`{"type":"GLOBAL","global":{"stream_states":{}}}`, "", "", "", "stream_states must be an array"},
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":"u","namespace":1}}}`, "", "", "", "namespace must be a string"},
		{`{"type":"STREAM","stream":{"stream_descriptor":{"name":""}}}`, "", "", "", "needs stream.stream_descriptor.name"},
	}
	for _, tt := range tests {
		t.Run(tt.state, func(t *testing.T) {
			kind, name, ns, err := Describe([]byte(tt.state))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || string(kind) != tt.kind || name != tt.name || ns != tt.ns {
				t.Fatalf("got %s %s %s %v", kind, name, ns, err)
			}
		})
	}
}

func TestWithDestinationStats(t *testing.T) {
	tests := []struct {
		name, line string
		records    int64
		rejected   int64
		want       string
	}{
		{"stream", `{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"u"},"stream_state":{"c":18446744073709551615}},"sourceStats":{"recordCount":3.0}}}`, 3, 0,
			`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"u"},"stream_state":{"c":18446744073709551615}},"sourceStats":{"recordCount":3.0},"destinationStats":{"recordCount":3.0}}}`},
		{"replaces existing", `{"state":{"destinationStats":{"recordCount":99},"data":{}} ,"type":"STATE"}`, 0, 2,
			`{"state":{"data":{},"destinationStats":{"recordCount":0.0,"rejectedRecordCount":2.0}} ,"type":"STATE"}`},
		{"empty state", `{"type":"STATE","state":{}}`, 1, 0, `{"type":"STATE","state":{"destinationStats":{"recordCount":1.0}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := WithDestinationStats([]byte(tt.line), tt.records, tt.rejected)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatal("not JSON")
			}
		})
	}
}

func TestDrainedAndStop(t *testing.T) {
	var out []string
	tr := New(func(l []byte) error { out = append(out, string(l)); return nil })
	r1, r2 := tr.Next(), tr.Next()
	drained := func() bool {
		select {
		case <-tr.Drained():
			return true
		default:
			return false
		}
	}
	if err := tr.Done(r1); err != nil {
		t.Fatal(err)
	}
	if err := tr.Done(r2); err != nil {
		t.Fatal(err)
	}
	if drained() {
		t.Fatal("drained before the input was sealed")
	}
	r3 := tr.Next()
	if err := tr.State([]byte("s3")); err != nil {
		t.Fatal(err)
	}
	tr.Seal()
	if drained() {
		t.Fatal("drained with record 3 in flight")
	}
	tr.Stop()
	if err := tr.Done(r3); err != nil {
		t.Fatal(err)
	}
	if !drained() {
		t.Fatal("not drained once every record finished")
	}
	if len(out) != 0 {
		t.Fatalf("a state was written after Stop: %v", out)
	}
}
