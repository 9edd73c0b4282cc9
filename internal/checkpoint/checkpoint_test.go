package checkpoint

import (
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
	must(tr.State(AllStreams, line("s0"))) // no records before it: out at once
	r1, r2, r3 := tr.Next(), tr.Next(), tr.Next()
	must(tr.State(AllStreams, line("s1")))
	r4 := tr.Next()
	must(tr.State(AllStreams, line("s2")))
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
	if err := tr.State(AllStreams, line("s")); err == nil {
		t.Fatal("want the emit error")
	}
	if err := tr.State(AllStreams, line("t")); err == nil {
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
			if err := tr.State(AllStreams, line(fmt.Sprint(states))); err != nil {
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
	if err := tr.State(AllStreams, line("s3")); err != nil {
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

// line is a stamp that writes s, with the refusals counted toward the
// state after a slash when there are any.
func line(s string) func(int64) []byte {
	return func(refused int64) []byte {
		if refused > 0 {
			return fmt.Appendf(nil, "%s/%d", s, refused)
		}
		return []byte(s)
	}
}

// TestRefusalsCountTowardTheirState: a refused record finishes like an
// acknowledged one and counts toward the first state after it that covers
// its stream; one that no queued state covers waits for the next that does.
func TestRefusalsCountTowardTheirState(t *testing.T) {
	const a, b = 0, 1 // plan indexes
	type step struct {
		op    string // "rec" numbers a record; "ack" and "refuse" finish the one at index; "state" queues a state
		index int    // the record (0-based in numbering order), or the state's scope
		name  string // the state's
	}
	tests := []struct {
		name  string
		steps []step
		want  string
	}{
		{"a refusal counts toward its stream's state", []step{
			{"rec", 0, ""}, {"rec", 0, ""}, {"state", a, "sa"}, {"refuse", 1, ""}, {"ack", 0, ""}}, "sa/1"},
		{"not toward another stream's state, but the next of its own", []step{
			{"rec", 0, ""}, {"state", b, "sb"}, {"rec", 0, ""}, {"state", a, "sa"}, {"refuse", 0, ""}, {"ack", 1, ""}}, "sb,sa/1"},
		{"a global state covers every stream", []step{
			{"rec", 0, ""}, {"rec", 0, ""}, {"state", AllStreams, "g"}, {"refuse", 0, ""}, {"refuse", 1, ""}}, "g/2"},
		{"the first state after the record, not a later one", []step{
			{"rec", 0, ""}, {"state", a, "s1"}, {"rec", 0, ""}, {"state", a, "s2"}, {"refuse", 1, ""}, {"refuse", 0, ""}}, "s1/1,s2/1"},
		{"no state yet: the next that covers the stream", []step{
			{"rec", 0, ""}, {"refuse", 0, ""}, {"state", b, "sb"}, {"state", a, "sa"}}, "sb,sa/1"},
		{"no state yet: a global one takes every stream's", []step{
			{"rec", 0, ""}, {"rec", 0, ""}, {"refuse", 0, ""}, {"refuse", 1, ""}, {"state", AllStreams, "g"}, {"state", AllStreams, "h"}}, "g/2,h"},
		{"the state of another stream keeps nothing", []step{
			{"rec", 0, ""}, {"state", b, "sb"}, {"refuse", 0, ""}, {"rec", 0, ""}, {"state", a, "sa"}, {"ack", 1, ""}}, "sb,sa/1"},
		{"acknowledged records count for nothing", []step{
			{"rec", 0, ""}, {"state", a, "sa"}, {"ack", 0, ""}}, "sa"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out []string
			tr := New(func(l []byte) error { out = append(out, string(l)); return nil })
			var seqs []uint64
			for _, st := range tt.steps {
				var err error
				switch st.op {
				case "rec":
					seqs = append(seqs, tr.Next())
				case "ack":
					err = tr.Done(seqs[st.index])
				case "refuse":
					err = tr.Refused(seqs[st.index], a)
				case "state":
					err = tr.State(st.index, line(st.name))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := strings.Join(out, ","); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
			if s := tr.Stats(); s.Finished != s.Records || s.Held != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestFinishedFarAhead: records finished in order but for the first,
// thousands ahead of the watermark (the ring grows with records marked in
// it, three times), all count once the first one finishes.
func TestFinishedFarAhead(t *testing.T) {
	var out []string
	tr := New(func(l []byte) error { out = append(out, string(l)); return nil })
	const n = 5000
	for range n {
		tr.Next()
	}
	if err := tr.State(AllStreams, line("s")); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(2); seq <= n; seq++ {
		if err := tr.Done(seq); err != nil {
			t.Fatal(err)
		}
		if seq == n/2 {
			if err := tr.Done(2); err != nil { // again: no effect
				t.Fatal(err)
			}
		}
	}
	if s := tr.Stats(); s.Finished != 0 || len(out) != 0 {
		t.Fatalf("before record 1: %+v, %v", s, out)
	}
	if err := tr.Done(1); err != nil {
		t.Fatal(err)
	}
	if s := tr.Stats(); s.Finished != n || len(out) != 1 {
		t.Fatalf("after record 1: %+v, %v", s, out)
	}
}
