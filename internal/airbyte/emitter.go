// Package airbyte owns the connector's stdout: every line it writes is one
// Airbyte protocol message (SPEC, CONNECTION_STATUS, LOG, TRACE, STATE), built
// from the generated types in gen/protocol except for STATE echoes, which are
// written from raw bytes so that state blobs pass through unchanged. The
// emitter is safe for concurrent use and scrubs registered secrets from every
// human-readable text it writes. It does not read stdin.
package airbyte

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"destination-keen/gen/protocol"
	"destination-keen/internal/failure"
)

// Log levels used by the connector.
const (
	Info  = protocol.AirbyteLogMessageLevelINFO
	Warn  = protocol.AirbyteLogMessageLevelWARN
	Error = protocol.AirbyteLogMessageLevelERROR
	Debug = protocol.AirbyteLogMessageLevelDEBUG
)

// Redacted replaces a secret wherever it would have been written.
const Redacted = "[redacted]"

// Emitter writes protocol messages, one JSON object per line.
type Emitter struct {
	mu      sync.Mutex
	w       *bufio.Writer
	err     error // first write error; later writes are skipped
	secrets []string
	now     func() time.Time

	logOnce sync.Once
	log     *slog.Logger
}

// NewEmitter returns an emitter writing to w. Every message is flushed as it
// is written: the platform reads states as they come.
func NewEmitter(w io.Writer) *Emitter {
	return &Emitter{w: bufio.NewWriterSize(w, 64<<10), now: time.Now}
}

// SetClock replaces the clock used for emitted_at (tests).
func (e *Emitter) SetClock(now func() time.Time) { e.now = now }

// Redact registers a secret: it never appears in a LOG or TRACE text written
// after this call. Empty secrets are ignored.
func (e *Emitter) Redact(secret string) {
	if secret == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, secret)
}

func (e *Emitter) scrub(s string) string {
	for _, secret := range e.secrets {
		s = strings.ReplaceAll(s, secret, Redacted)
	}
	return s
}

// Err returns the first error met writing to the output (a closed pipe).
func (e *Emitter) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

func (e *Emitter) writeLine(b []byte) error {
	if e.err != nil {
		return e.err
	}
	if _, err := e.w.Write(b); err != nil {
		e.err = fmt.Errorf("write to stdout: %w", err)
		return e.err
	}
	if err := e.w.WriteByte('\n'); err != nil {
		e.err = fmt.Errorf("write to stdout: %w", err)
		return e.err
	}
	if err := e.w.Flush(); err != nil {
		e.err = fmt.Errorf("write to stdout: %w", err)
	}
	return e.err
}

func (e *Emitter) emit(m *protocol.AirbyteMessage) error {
	// Without HTML escaping: a log's "->" and ">=" stay as they are, for
	// the people who read raw logs.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.writeLine(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// Spec writes one SPEC message.
func (e *Emitter) Spec(spec *protocol.ConnectorSpecification) error {
	return e.emit(&protocol.AirbyteMessage{Type: protocol.AirbyteMessageTypeSPEC, Spec: spec})
}

// ConnectionStatus writes one CONNECTION_STATUS message; message may be empty.
func (e *Emitter) ConnectionStatus(ok bool, message string) error {
	cs := &protocol.AirbyteConnectionStatus{Status: protocol.AirbyteConnectionStatusStatusSUCCEEDED}
	if !ok {
		cs.Status = protocol.AirbyteConnectionStatusStatusFAILED
	}
	if message != "" {
		e.mu.Lock()
		m := e.scrub(message)
		e.mu.Unlock()
		cs.Message = &m
	}
	return e.emit(&protocol.AirbyteMessage{Type: protocol.AirbyteMessageTypeCONNECTIONSTATUS, ConnectionStatus: cs})
}

// Plural returns one when n is 1 and many otherwise, for the counts that
// log messages give ("1 record", "2 records").
func Plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// TraceError writes one TRACE ERROR message for err, classified by package
// failure: message for a person, internal_message with the cause.
func (e *Emitter) TraceError(err error) error {
	f := failure.As(err)
	e.mu.Lock()
	te := &protocol.AirbyteErrorTraceMessage{Message: e.scrub(f.Message)}
	if f.Cause != nil {
		internal := e.scrub(f.Cause.Error())
		te.InternalMessage = &internal
	}
	e.mu.Unlock()
	ft := f.Kind.FailureType()
	te.FailureType = &ft
	if f.Stream != "" {
		te.StreamDescriptor = &protocol.StreamDescriptor{Name: f.Stream}
		if f.Namespace != "" {
			te.StreamDescriptor.Namespace = &f.Namespace
		}
	}
	return e.emit(&protocol.AirbyteMessage{
		Type: protocol.AirbyteMessageTypeTRACE,
		Trace: &protocol.AirbyteTraceMessage{
			Type:      protocol.AirbyteTraceMessageTypeERROR,
			EmittedAt: float64(e.now().UnixMilli()),
			Error:     te,
		},
	})
}

// Line writes one already-encoded message (a STATE echo) as it is. The caller
// guarantees that line is one JSON object without a newline.
func (e *Emitter) Line(line []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.writeLine(line)
}
