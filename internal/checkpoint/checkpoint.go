// Package checkpoint owns Airbyte's state rule: a STATE is echoed, in input
// order, only once every record that came before it is finished (acknowledged
// by the brokers, or deliberately skipped), and with destinationStats set to
// the records tied to it. Records are numbered as they enter; acknowledgements
// may arrive in any order; the tracker keeps a watermark below which every
// record is finished. It does not produce, decode records or states (package
// message reads a state's kind and stream, and sets its destinationStats) or
// write anything but the echoed states.
package checkpoint

import "sync"

// Tracker numbers records and releases states. It is safe for concurrent
// use: records and states come from the reader, acknowledgements from the
// producer.
type Tracker struct {
	mu      sync.Mutex
	next    uint64              // the last sequence number handed out
	done    uint64              // every record numbered up to done is finished
	ahead   map[uint64]struct{} // finished records above done+1
	pending []pending           // states waiting, in input order

	emitMu  sync.Mutex // held while states are written, to keep their order
	emit    func(line []byte) error
	emitErr error
	emitted int
	stopped bool // under emitMu: no state is written any more

	sealed  bool          // no record will be numbered any more
	drained chan struct{} // closed once sealed and every record is finished
}

type pending struct {
	after uint64 // the last record before the state
	line  []byte
}

// New returns a tracker that writes released states with emit.
func New(emit func(line []byte) error) *Tracker {
	return &Tracker{emit: emit, ahead: map[uint64]struct{}{}, drained: make(chan struct{})}
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
	if seq == t.done+1 {
		t.done = seq
		for {
			if _, ok := t.ahead[t.done+1]; !ok {
				break
			}
			delete(t.ahead, t.done+1)
			t.done++
		}
	} else if seq > t.done {
		t.ahead[seq] = struct{}{}
	}
	t.checkDrained()
	ready := len(t.pending) > 0 && t.pending[0].after <= t.done
	t.mu.Unlock()
	if ready {
		return t.release()
	}
	return nil
}

// State queues a state line (copied) behind every record numbered so far,
// and writes it at once if they are all finished.
func (t *Tracker) State(line []byte) error {
	t.mu.Lock()
	t.pending = append(t.pending, pending{after: t.next, line: append([]byte(nil), line...)})
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
		if err := t.emit(p.line); err != nil {
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
