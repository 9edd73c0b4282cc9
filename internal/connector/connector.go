// Package connector runs Airbyte's spec and check commands and holds what
// they share with write (package write, which runs a sync): the version, the
// config warnings, the online probes. It owns their order of operations and
// what each prints; the rules of Keen, the Kafka sink and the protocol codecs
// live in their own packages. cmd/destination-keen only parses flags and
// calls in here and in package write.
package connector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"destination-keen/gen/protocol"
	"destination-keen/internal/airbyte"
	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/jsonx"
	"destination-keen/schemas"
)

// Version is the connector's version; the Dockerfile's io.airbyte.version
// label and metadata.yaml's dockerImageTag must equal it (a test checks).
const Version = "0.7.0"

// Spec returns the connector specification: schemas/spec.json with the
// connectionSpecification taken from schemas/config.schema.json, less the
// $id by which the connector's own validator knows that schema (an address
// of no use to anyone else).
func Spec() (*protocol.ConnectorSpecification, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(schemas.Raw(schemas.SpecFile), &fields); err != nil {
		return nil, fmt.Errorf("decode %s: %w", schemas.SpecFile, err)
	}
	fields["connectionSpecification"] = withoutMember(schemas.Raw(schemas.ConfigFile), "$id")
	doc, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("compose spec: %w", err)
	}
	var spec protocol.ConnectorSpecification
	if err := json.Unmarshal(doc, &spec); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	return &spec, nil
}

// withoutMember returns the JSON object obj without its top-level members
// called name, the others as they are, in their order.
func withoutMember(obj []byte, name string) []byte {
	out := []byte{'{'}
	jsonx.Members(obj, func(m *jsonx.Member) bool {
		if m.Name() != name {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, obj[m.Start:m.End]...)
		}
		return true
	})
	return append(out, '}')
}

// RunSpec prints one SPEC message.
func RunSpec(em *airbyte.Emitter) error {
	spec, err := Spec()
	if err != nil {
		return failure.Systemf(err, "The connector's embedded spec is broken")
	}
	return em.Spec(spec)
}

// Probe is one online check of a valid config (Kafka, HTTP API). It returns
// nil when the check passes, or an error whose failure.Error message tells the
// user what to fix; warn logs what the user should know of a check that
// passes (a Kafka seed that cannot be reached).
type Probe func(ctx context.Context, cfg *config.Config, log *slog.Logger) error

// RunCheck prints one CONNECTION_STATUS: FAILED with what to fix when the
// config is invalid or a probe fails, SUCCEEDED otherwise. The returned error
// is only for a failure to write the status.
func RunCheck(ctx context.Context, em *airbyte.Emitter, configPath string, probes ...Probe) error {
	cfg, err := config.Load(ctx, configPath)
	if err != nil {
		return em.ConnectionStatus(false, failure.As(err).Message)
	}
	em.Redact(cfg.APIKey.Reveal())
	LogConfigWarnings(em, cfg)
	for _, probe := range probes {
		if err := probe(ctx, cfg, em.Log()); err != nil {
			f := failure.As(err)
			msg := f.Message
			if f.Cause != nil {
				msg += " (" + f.Cause.Error() + ")"
			}
			return em.ConnectionStatus(false, msg)
		}
	}
	return em.ConnectionStatus(true, "")
}

// LogConfigWarnings logs a WARN for each field of the config that is not an
// option (a typo takes the option's default silently otherwise).
func LogConfigWarnings(em *airbyte.Emitter, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		em.Log().Warn(fmt.Sprintf("Config: %s", w))
	}
}
