// Package checkpoint owns Airbyte's state rule: a STATE is echoed, in input
// order, only once every record that came before it is finished (acknowledged
// by the brokers, or deliberately skipped), and with destinationStats set to
// the records tied to it. Records are numbered as they enter; acknowledgements
// may arrive in any order; the tracker keeps a watermark below which every
// record is finished. It does not produce, decode records or states (package
// message reads a state's kind and stream, and sets its destinationStats) or
// write anything but the echoed states.
//
// A record Keen refused (its HTTPS answer for that event) is finished too,
// and counted toward the first state after it that covers its stream (a
// STREAM state of that stream, or a GLOBAL or LEGACY state): that state's
// rejectedRecordCount includes it. A refusal comes after its state was read,
// but never after the state was written, since the state waits for it.
package checkpoint

import "sync"

// Tracker numbers records and releases states. It is safe for concurrent
// use: records and states come from the reader, acknowledgements from the
// producer.
type Tracker struct {
	mu   sync.Mutex
	next uint64 // the last sequence number handed out
	done uint64 // every record numbered up to done is finished
	// ahead marks the finished records above done+1: record s at
	// ahead[s % len(ahead)], for done < s < done+len(ahead), so no two
	// share a slot; it doubles when a record finishes further ahead. A
	// ring rather than a set: most records finish ahead of the watermark
	// when several producers answer, and a map cost 4% of a sync's CPU.
	ahead   []bool
	pending []pending // states waiting, in input order
	// carry holds, per stream (plan index), the refusals that no queued
	// state covers yet: the next state that covers the stream takes them.
	carry map[int]int64

	emitMu  sync.Mutex // held while states are written, to keep their order
	emit    func(line []byte) error
	emitErr error
	emitted int
	stopped bool // under emitMu: no state is written any more

	sealed  bool          // no record will be numbered any more
	drained chan struct{} // closed once sealed and every record is finished
}

type pending struct {
	after   uint64 // the last record before the state
	scope   int    // the stream it covers, or AllStreams
	refused int64  // refusals counted toward it
	stamp   func(refused int64) []byte
}

// AllStreams is the scope of a GLOBAL or LEGACY state: it covers the
// records of every stream.
const AllStreams = -1

// New returns a tracker that writes released states with emit.
func New(emit func(line []byte) error) *Tracker {
	return &Tracker{emit: emit, ahead: make([]bool, 1024), carry: map[int]int64{}, drained: make(chan struct{})}
}

// Seal says that no record will be numbered any more (the input ended):
// Drained is closed once every record numbered is finished.
func (t *Tracker) Seal() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.sealed {
		t.sealed = true
		t.checkDrained()
	}
}

// Drained is closed once the tracker is sealed and every record finished:
// the signal that a sync's input is delivered, without polling.
func (t *Tracker) Drained() <-chan struct{} { return t.drained }

// checkDrained closes drained when it is due; t.mu is held.
func (t *Tracker) checkDrained() {
	if t.sealed && t.done == t.next {
		select {
		case <-t.drained:
		default:
			close(t.drained)
		}
	}
}

// Stop ends the writing of states: once it returns, no state is written,
// whatever is acknowledged later. The end of a sync calls it before it
// reports, so that nothing reaches stdout after the sync has returned.
func (t *Tracker) Stop() {
	t.emitMu.Lock()
	defer t.emitMu.Unlock()
	t.stopped = true
}

// Next numbers one record entering the sync.
func (t *Tracker) Next() uint64 {
	t.mu.Lock()
	t.next++
	n := t.next
	t.mu.Unlock()
	return n
}

// Done marks record seq finished and releases the states it held back.
func (t *Tracker) Done(seq uint64) error {
	t.mu.Lock()
	return t.finish(seq)
}

// Refused marks record seq, of the stream with plan index plan, finished
// as refused by Keen, counts it toward the first state that covers it, and
// releases the states it held back.
func (t *Tracker) Refused(seq uint64, plan int) error {
	t.mu.Lock()
	for i := range t.pending {
		p := &t.pending[i]
		if p.after >= seq && (p.scope == AllStreams || p.scope == plan) {
			p.refused++
			return t.finish(seq)
		}
	}
	t.carry[plan]++
	return t.finish(seq)
}

// finish marks seq finished; t.mu is held, and unlocked on return.
func (t *Tracker) finish(seq uint64) error {
	if seq == t.done+1 {
		t.done = seq
		mask := uint64(len(t.ahead) - 1)
		for t.ahead[(t.done+1)&mask] {
			t.ahead[(t.done+1)&mask] = false
			t.done++
		}
	} else if seq > t.done {
		for seq-t.done >= uint64(len(t.ahead)) {
			t.grow()
		}
		t.ahead[seq&uint64(len(t.ahead)-1)] = true
	}
	t.checkDrained()
	ready := len(t.pending) > 0 && t.pending[0].after <= t.done
	t.mu.Unlock()
	if ready {
		return t.release()
	}
	return nil
}

// grow doubles the ring of records finished ahead; t.mu is held.
func (t *Tracker) grow() {
	old, oldMask := t.ahead, uint64(len(t.ahead)-1)
	t.ahead = make([]bool, 2*len(old))
	mask := uint64(len(t.ahead) - 1)
	for s := t.done + 1; s < t.done+uint64(len(old)); s++ {
		if old[s&oldMask] {
			t.ahead[s&mask] = true
		}
	}
}

// State queues a state behind every record numbered so far, covering the
// records of the stream with plan index scope (or of every stream, for
// AllStreams), and writes it at once if they are all finished. stamp makes
// the line written, given the refusals counted toward the state; it is
// called once, when the state is released.
func (t *Tracker) State(scope int, stamp func(refused int64) []byte) error {
	t.mu.Lock()
	var refused int64
	if scope == AllStreams {
		for k, n := range t.carry {
			refused += n
			delete(t.carry, k)
		}
	} else if n := t.carry[scope]; n > 0 {
		refused = n
		delete(t.carry, scope)
	}
	t.pending = append(t.pending, pending{after: t.next, scope: scope, refused: refused, stamp: stamp})
	ready := t.pending[0].after <= t.done
	t.mu.Unlock()
	if ready {
		return t.release()
	}
	return nil
}

// release writes every state whose records are all finished, in order.
func (t *Tracker) release() error {
	t.emitMu.Lock()
	defer t.emitMu.Unlock()
	for !t.stopped {
		t.mu.Lock()
		if len(t.pending) == 0 || t.pending[0].after > t.done || t.emitErr != nil {
			err := t.emitErr
			t.mu.Unlock()
			return err
		}
		p := t.pending[0]
		t.pending[0] = pending{}
		t.pending = t.pending[1:]
		t.mu.Unlock()
		if err := t.emit(p.stamp(p.refused)); err != nil {
			t.mu.Lock()
			t.emitErr = err
			t.mu.Unlock()
			return err
		}
		t.mu.Lock()
		t.emitted++
		t.mu.Unlock()
	}
	return nil
}

// Stats says how far the tracker got.
type Stats struct {
	Records  uint64 // numbered
	Finished uint64 // the watermark: records 1..Finished are finished
	Emitted  int    // states written
	Held     int    // states still waiting
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{Records: t.next, Finished: t.done, Emitted: t.emitted, Held: len(t.pending)}
}
