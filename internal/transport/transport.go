// Package transport holds what the record pipeline shares with every way
// of taking events to Keen (package sink's Kafka producer, package bulk's
// HTTPS requests): the envelope an event travels in, and the outcomes a
// transport reports for it. It knows no protocol; the Transport interface
// itself is defined where it is used, in package pipeline.
//
// Every envelope sent ends in exactly one outcome, reported once, from the
// transport's goroutines: Stored (Keen has the event, or the brokers that
// feed it acknowledged it), Refused (Keen answered for this one event that
// it will not keep it, and why: only a transport that hears Keen's word per
// event reports it), or Failed (the transport gave up; the sync fails unless
// the error is ErrTooLarge and the user chose to skip such records). The
// envelope is recycled after the callback returns.
package transport

import "errors"

// Envelope carries one event from the pipeline to Keen. Transports pool
// and recycle envelopes: one is not used after its outcome is reported.
type Envelope struct {
	Buf        []byte // the event, one JSON object
	Seq        uint64 // the checkpoint tracker's number for the record
	Plan       int    // the index of the stream's plan
	Stream     string // the stream's name, for messages
	Collection string // where the event goes
	// Carrier is the transport's own part of the envelope (a Kafka
	// message), made once with the envelope and kept across its reuses, so
	// that sending allocates nothing per event.
	Carrier any
}

// Refusal is Keen's answer for one event it did not keep.
type Refusal struct {
	Name        string // Keen's error name, e.g. InvalidPropertyNameError
	Description string // Keen's description, for people
}

// Outcomes are the callbacks a transport reports to; each is required.
type Outcomes struct {
	Stored  func(*Envelope)
	Refused func(*Envelope, Refusal)
	// Failed gets a classified *failure.Error (package failure), whose
	// cause is ErrTooLarge when the event was refused for its size.
	Failed func(*Envelope, error)
}

// ErrTooLarge is the cause of a failure for an event larger than the
// transport or Keen takes, which the oversized_records policy may skip.
var ErrTooLarge = errors.New("event too large")
