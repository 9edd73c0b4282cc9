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
