package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Keen's HTTPS API for recording events in bulk: POST
// /3.0/projects/{project}/events with {"<collection>": [event, ...], ...}
// and a write or master key. Keen answers 200 with, per collection, one
// result per event in the order sent: {"success": true}, or {"success":
// false, "error": {"name": ..., "description": ...}} for an event it did
// not keep. The emulator applies the same rules and uniqueness tokens as to
// what the brokers store, and keeps refused events as rejections, so that
// an event refused over Kafka is refused over HTTPS too.

// HTTPSPartition is the Rejection.Partition of an event sent over HTTPS.
const HTTPSPartition = -1

// MaxBulkBytes is the largest request body the emulator reads.
const MaxBulkBytes = 64 << 20

// bulkResult is one event's answer.
type bulkResult struct {
	Success bool       `json:"success"`
	Error   *bulkError `json:"error,omitempty"`
}

type bulkError struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// bulkFault is the next bulk request's fault.
type bulkFault struct {
	httpFault               // an error status to answer (0: none), with Retry-After
	drop      bool          // store the events, then close the connection unanswered
	delay     time.Duration // answer this much later
	hold      chan struct{} // answer once closed
}

// Faults apply to the bulk requests that carry events, in order; a request
// of none (a check of the key) passes.

// FailEvents answers each of the next n bulk requests with status (a 429,
// 500, 503...), with Retry-After when retryAfter is not empty, storing
// nothing.
func (e *Emulator) FailEvents(n, status int, retryAfter string) {
	e.addBulkFaults(n, bulkFault{httpFault: httpFault{status, retryAfter}})
}

// DropEventsConnections stores the events of each of the next n bulk
// requests and then closes the connection without an answer: the client
// cannot know whether they were kept.
func (e *Emulator) DropEventsConnections(n int) {
	e.addBulkFaults(n, bulkFault{drop: true})
}

// DelayEvents answers each of the next n bulk requests d late.
func (e *Emulator) DelayEvents(d time.Duration, n int) {
	e.addBulkFaults(n, bulkFault{delay: d})
}

// HoldEvents holds the answers of the next n bulk requests (their events
// stored) until release is called.
func (e *Emulator) HoldEvents(n int) (release func()) {
	hold := make(chan struct{})
	e.addBulkFaults(n, bulkFault{hold: hold})
	var once sync.Once
	return func() { once.Do(func() { close(hold) }) }
}

func (e *Emulator) addBulkFaults(n int, f bulkFault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for range n {
		e.bulkFlt = append(e.bulkFlt, f)
	}
}

// BulkRequests is how many bulk requests the emulator has read.
func (e *Emulator) BulkRequests() int64 { return e.bulkCount.Load() }

// writer checks the project and that the key may write (the master key or
// the write key).
func (e *Emulator) writer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p := r.PathValue("project"); p != e.opts.ProjectID {
			keenError(w, http.StatusNotFound, "ProjectNotFoundError", fmt.Sprintf("Project not found: '%s'.", p))
			return
		}
		if key := r.Header.Get("Authorization"); key != e.opts.APIKey && (e.opts.WriteKey == "" || key != e.opts.WriteKey) {
			keenError(w, http.StatusUnauthorized, "InvalidApiKeyError", fmt.Sprintf("Specified API Key is invalid. API Key: '%s'.", key))
			return
		}
		h(w, r)
	}
}

func (e *Emulator) handleEvents(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBulkBytes))
	if err != nil {
		keenError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeError", fmt.Sprintf("Request body is over %d bytes.", MaxBulkBytes))
		return
	}
	e.bulkCount.Add(1)
	var batch map[string][]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&batch); err != nil || d.More() {
		keenError(w, http.StatusBadRequest, "InvalidEventError", "The request body must be one JSON object of collection names to arrays of events.")
		return
	}
	e.mu.Lock()
	var f bulkFault
	if len(e.bulkFlt) > 0 && len(batch) > 0 { // a request without events (a key check) meets no fault
		f = e.bulkFlt[0]
		e.bulkFlt = e.bulkFlt[1:]
	}
	e.mu.Unlock()
	if f.status != 0 {
		f.answer(w)
		return
	}
	answer := make(map[string][]bulkResult, len(batch))
	now := time.Now()
	e.mu.Lock()
	for collection, events := range batch {
		results := make([]bulkResult, len(events))
		for i, value := range events {
			results[i] = e.recordEvent(collection, value, now)
		}
		answer[collection] = results
	}
	close(e.filed) // wake whoever waits for events
	e.filed = make(chan struct{})
	e.mu.Unlock()
	if f.drop {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-r.Context().Done():
			return
		}
	}
	writeJSON(w, http.StatusOK, answer)
}

// recordEvent files one event sent over HTTPS and returns Keen's answer for it;
// e.mu is held.
func (e *Emulator) recordEvent(collection string, value []byte, at time.Time) bulkResult {
	if e.opts.Blackhole {
		return bulkResult{Success: true}
	}
	offset := e.httpsNext[collection]
	e.httpsNext[collection] = offset + 1
	ev, err := e.check(collection, value)
	if err != nil {
		e.reject(collection, HTTPSPartition, offset, value, err)
		return bulkResult{Error: &bulkError{Name: errorName(err), Description: err.Error()}}
	}
	e.store(collection, HTTPSPartition, offset, at, ev) // a duplicate is answered as kept
	return bulkResult{Success: true}
}

// errorName is the name Keen gives an error of its rules, as far as the
// emulator knows them: property names, collection names, and the rest.
func errorName(err error) string {
	switch msg := err.Error(); {
	case strings.HasPrefix(msg, "collection name"):
		return "InvalidCollectionNameError"
	case strings.HasPrefix(msg, "property"), strings.HasPrefix(msg, "empty property name"):
		return "InvalidPropertyNameError"
	case strings.HasPrefix(msg, "keen."):
		return "InvalidKeenPropertyError"
	}
	return "InvalidEventError"
}
