// Package failure owns the connector's error classification: every error that
// ends a command is one *Error, which knows its Airbyte failure_type, the
// message for a person (what happened and what to do) and the wrapped cause
// (for internal_message). Errors are classified once, where they are created
// or first understood; nothing downstream matches error strings.
package failure

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"destination-keen/gen/protocol"
)

// Kind is the Airbyte failure_type of an error.
type Kind int

const (
	// System is a bug or bad input from the source: retrying will not help.
	System Kind = iota
	// Config means the user must change the config or catalog.
	Config
	// Transient means the same sync may succeed later.
	Transient
)

// FailureType is the protocol's name for the kind.
func (k Kind) FailureType() protocol.AirbyteErrorTraceMessageFailureType {
	switch k {
	case Config:
		return protocol.AirbyteErrorTraceMessageFailureTypeConfigError
	case Transient:
		return protocol.AirbyteErrorTraceMessageFailureTypeTransientError
	default:
		return protocol.AirbyteErrorTraceMessageFailureTypeSystemError
	}
}

func (k Kind) String() string { return string(k.FailureType()) }

// Error is a classified error. Message is for a person and must never hold a
// secret; Cause holds the technical detail and is reported as the trace's
// internal_message.
type Error struct {
	Kind    Kind
	Message string
	// Stream and Namespace name the stream concerned, when there is one.
	Stream    string
	Namespace string
	Cause     error
}

func (e *Error) Error() string {
	if e.Cause == nil {
		return e.Message
	}
	return e.Message + ": " + e.Cause.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Configf returns a config_error with a formatted message and cause.
func Configf(cause error, format string, args ...any) *Error {
	return &Error{Kind: Config, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// Transientf returns a transient_error with a formatted message and cause.
func Transientf(cause error, format string, args ...any) *Error {
	return &Error{Kind: Transient, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// Systemf returns a system_error with a formatted message and cause.
func Systemf(cause error, format string, args ...any) *Error {
	return &Error{Kind: System, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// As returns the outermost *Error in err's chain, or, when there is none, a
// system_error wrapping err (an error nobody classified is a bug); nil when
// err is nil.
func As(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return &Error{Kind: System, Message: "The connector failed unexpectedly", Cause: err}
}

// IsTLSTrust reports whether err is a peer certificate that does not verify
// (unknown authority, wrong host name, expired): a config_error, since
// retrying cannot fix it.
func IsTLSTrust(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}
