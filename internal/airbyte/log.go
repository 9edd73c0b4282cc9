package airbyte

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"destination-keen/gen/protocol"
)

// Log is the connector's logger: every record becomes one LOG message on
// the emitter's stdout, in order with the states around it, scrubbed of the
// registered secrets. Slog's levels map to Airbyte's: below Info is DEBUG,
// below Warn INFO, below Error WARN, the rest ERROR. The message is the
// record's text, followed by its attributes as key=value (strings with
// spaces or quotes quoted); a write error is kept in the emitter (Err), as
// for every other message, so a caller has nothing to handle.
func (e *Emitter) Log() *slog.Logger {
	e.logOnce.Do(func() { e.log = slog.New(&logHandler{em: e}) })
	return e.log
}

// logHandler is the slog.Handler behind Log.
type logHandler struct {
	em     *Emitter
	prefix string // attributes given to With, already formatted
	group  string // the open group's dotted name, with a trailing dot
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	e := h.em
	e.mu.Lock()
	msg := e.scrub(b.String())
	e.mu.Unlock()
	return e.emit(&protocol.AirbyteMessage{
		Type: protocol.AirbyteMessageTypeLOG,
		Log:  &protocol.AirbyteLogMessage{Level: levelOf(r.Level), Message: msg},
	})
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range attrs {
		appendAttr(&b, h.group, a)
	}
	return &logHandler{em: h.em, prefix: b.String(), group: h.group}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logHandler{em: h.em, prefix: h.prefix, group: h.group + name + "."}
}

// levelOf maps a slog level to Airbyte's.
func levelOf(l slog.Level) protocol.AirbyteLogMessageLevel {
	switch {
	case l < slog.LevelInfo:
		return Debug
	case l < slog.LevelWarn:
		return Info
	case l < slog.LevelError:
		return Warn
	}
	return Error
}

// appendAttr writes " key=value"; a group's members are named group.key.
// Values resolve through slog.LogValuer first, so a type that logs as
// [redacted] (config.Secret) never shows its value.
func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if v.Kind() == slog.KindGroup {
		inner := group
		if a.Key != "" {
			inner += a.Key + "."
		}
		for _, m := range v.Group() {
			appendAttr(b, inner, m)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(group)
	b.WriteString(a.Key)
	b.WriteByte('=')
	s := v.String()
	if v.Kind() == slog.KindAny {
		s = fmt.Sprint(v.Any())
	}
	if s == "" || strings.ContainsAny(s, " \"=\t\n") {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}
