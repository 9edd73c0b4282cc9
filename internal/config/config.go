// Package config owns the connector's configuration: it reads the --config
// file, validates it against the spec's connectionSpecification (schemas/),
// reports every problem together naming the fields but never their values,
// applies the defaults, and adapts the generated type into Config, the
// runtime's own. It does not reach the network.
package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	genconfig "destination-keen/gen/config"
	"destination-keen/internal/failure"
	"destination-keen/internal/jsonx"
	"destination-keen/schemas"
)

// Secret is a string that formats as [redacted]; Reveal returns the value.
type Secret string

// Reveal returns the secret itself, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

func (Secret) String() string   { return "[redacted]" }
func (Secret) GoString() string { return "[redacted]" }

// LogValue keeps the secret out of every log record (slog).
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON keeps the secret out of any JSON the connector writes.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Config is the validated configuration with defaults applied.
type Config struct {
	ProjectID      string
	APIKey         Secret
	InferTimestamp bool
	// Brokers are the Kafka bootstrap servers as host:port, in the order given.
	Brokers []string
	// APIURL is the HTTP API's base URL without a trailing slash.
	APIURL string
	// Compression is the Kafka batch codec: none, gzip, snappy, lz4 or zstd.
	Compression string
	// SkipOversized: leave out records too large for Keen instead of failing.
	SkipOversized bool
	// Nonconforming says what to do with a record that breaks Keen's event
	// rules; default Fix.
	Nonconforming Policy
	// Tokens says which streams' events get a keen.uniqueness_token;
	// default TokensKeyed.
	Tokens TokenPolicy
	// DeliveryTimeout bounds how long the brokers may acknowledge nothing.
	DeliveryTimeout time.Duration
	// Producers is how many Kafka producers send side by side; 0 lets the
	// sink pick from the round trip to the brokers.
	Producers int
	// Transport is how events reach Keen: Kafka (default) or HTTPS.
	Transport Transport
	// FailRefused: with HTTPS, an event Keen refuses fails the sync instead
	// of being counted and skipped (refused_records).
	FailRefused bool
	// Warnings name the config's fields that are not options, with the
	// option each was probably meant to be; check and write log them.
	Warnings []string
}

// Transport is how events reach Keen (transport).
type Transport uint8

const (
	Kafka Transport = iota // Keen's Kafka Inbound Cluster
	HTTPS                  // Keen's HTTPS API
)

func (t Transport) String() string { return [...]string{"kafka", "https"}[t] }

// Policy is what the connector does with a record that breaks Keen's event
// rules (nonconforming_records).
type Policy uint8

// Policies.
const (
	Fix  Policy = iota // send an event Keen takes, every value kept (default)
	Skip               // leave the record out, counted as rejected
	Fail               // stop the sync
)

func (p Policy) String() string { return [...]string{"fix", "skip", "fail"}[p] }

// policies maps the config's values to Policy.
var policies = map[genconfig.ConfigNonconformingRecords]Policy{
	genconfig.ConfigNonconformingRecordsFix:  Fix,
	genconfig.ConfigNonconformingRecordsSkip: Skip,
	genconfig.ConfigNonconformingRecordsFail: Fail,
}

// TokenPolicy is which streams' events get a keen.uniqueness_token
// (uniqueness_token).
type TokenPolicy uint8

// Token policies.
const (
	TokensKeyed TokenPolicy = iota // streams with a primary key: key, cursor and content (default)
	TokensAll                      // as TokensKeyed, and streams without a key from the whole record
	TokensOff                      // no token
)

func (p TokenPolicy) String() string { return [...]string{"keyed_streams", "all_streams", "off"}[p] }

var tokenPolicies = map[genconfig.ConfigUniquenessToken]TokenPolicy{
	genconfig.ConfigUniquenessTokenKeyedStreams: TokensKeyed,
	genconfig.ConfigUniquenessTokenAllStreams:   TokensAll,
	genconfig.ConfigUniquenessTokenOff:          TokensOff,
}

// deprecatedValues are option values of earlier versions, still accepted so
// that a saved config keeps working: field -> old value -> the value it
// means now. Parse maps them before validation, with a warning.
var deprecatedValues = map[string]map[string]string{
	"uniqueness_token": {
		"primary_key": string(genconfig.ConfigUniquenessTokenKeyedStreams),
		"record":      string(genconfig.ConfigUniquenessTokenAllStreams),
	},
}

// mapDeprecated rewrites the deprecated values of doc's fields into the
// values they mean now, and says so for each. A doc that is not a JSON
// object is returned as it is, for validation to describe.
func mapDeprecated(doc []byte) ([]byte, []string) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(doc, &fields) != nil {
		return doc, nil
	}
	var warnings []string
	for field, values := range deprecatedValues {
		var v string
		if json.Unmarshal(fields[field], &v) != nil {
			continue
		}
		if now, ok := values[v]; ok {
			fields[field], _ = json.Marshal(now)
			warnings = append(warnings, fmt.Sprintf("%s: %q is the value of an earlier version and now means %q; set it to %q (it works as it is)", field, v, now, now))
		}
	}
	if len(warnings) == 0 {
		return doc, nil
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return doc, nil
	}
	return out, warnings
}

// Load reads (at most MaxConfigBytes, until ctx ends) and parses the config
// file at path.
func Load(ctx context.Context, path string) (*Config, error) {
	b, err := ReadFile(ctx, path, "config", MaxConfigBytes)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse validates doc against the connectionSpecification and returns the
// config with defaults applied. Its errors are config_errors that list every
// problem, sorted, each naming the field.
func Parse(doc []byte) (*Config, error) {
	doc, deprecated := mapDeprecated(doc)
	warnings, nearMiss := unknownFields(doc)
	warnings = append(deprecated, warnings...)
	if err := schemas.Validate(schemas.Config, doc); err != nil {
		var se *schemas.SyntaxError
		if errors.As(err, &se) {
			// The cause is left out on purpose: the decoder may quote the input.
			return nil, &failure.Error{Kind: failure.Config, Message: "The config is " + se.Error()}
		}
		problems := describe(schemas.Problems(err), nearMiss)
		if len(problems) == 0 {
			return nil, failure.Configf(err, "The config could not be validated")
		}
		return nil, &failure.Error{Kind: failure.Config, Message: "The config is invalid: " + strings.Join(problems, "; ")}
	}
	var g genconfig.Config
	if err := json.Unmarshal(forDecoding(doc), &g); err != nil {
		// The schema accepted what the generated type refuses: the two drifted.
		return nil, failure.Systemf(errors.New(redactValues(err.Error())), "The config passed validation but could not be decoded")
	}
	if problems := checkValues(&g); len(problems) > 0 {
		return nil, &failure.Error{Kind: failure.Config, Message: "The config is invalid: " + strings.Join(problems, "; ")}
	}
	c := adapt(&g)
	c.Warnings = warnings
	return c, nil
}

// forDecoding returns the validated config object doc as the generated
// type can decode it: the fields that are not options left out (they are
// only warned about, and may hold what the generated decoder refuses, such
// as 1e700), and every whole number written as an integer (JSON Schema
// counts 3.0 and 3e0 as the integer 3, and so does the config, where the
// generated int fields would refuse them).
func forDecoding(doc []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(doc, &m) != nil {
		return doc
	}
	changed := false
	for k, v := range m {
		if !slices.Contains(options, k) {
			delete(m, k)
			changed = true
			continue
		}
		if jsonx.KindOf(v) != jsonx.Number {
			continue
		}
		if n, ok := schemas.ParseInteger(v); ok && strconv.FormatInt(n, 10) != string(v) {
			m[k], changed = json.RawMessage(strconv.FormatInt(n, 10)), true
		}
	}
	if !changed {
		return doc
	}
	out, err := json.Marshal(m)
	if err != nil {
		return doc
	}
	return out
}

// checkValues finds what the schema's patterns cannot: addresses that are
// not host:port, ports out of range, a URL without a host, a key that no
// HTTP header or SASL exchange can carry. Each problem names its field and
// what is wrong, never the value; sorted by field.
func checkValues(g *genconfig.Config) []string {
	var problems []string
	if i := strings.IndexFunc(g.APIKey, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		problems = append(problems, "api_key: holds a line break or another control character, which an HTTP header cannot carry; copy the key again from the Access tab")
	}
	if u, err := url.Parse(g.APIURL); err != nil {
		problems = append(problems, "api_url: is not a URL")
	} else if u.Hostname() == "" {
		problems = append(problems, "api_url: has no host")
	} else if p := u.Port(); p != "" && !validPort(p) {
		problems = append(problems, "api_url: has a port out of range (1-65535)")
	}
	brokers := splitBrokers(g.KafkaBootstrapServers)
	for i, b := range brokers {
		where := fmt.Sprintf("kafka_bootstrap_servers: address %d of %d", i+1, len(brokers))
		if strings.Contains(b, "://") {
			problems = append(problems, where+" has a scheme; give host:port only (the connection is always TLS)")
			continue
		}
		if strings.ContainsAny(b, "; \t|") {
			problems = append(problems, where+" holds a ';', '|' or a space: addresses are separated by commas")
			continue
		}
		host, port, err := net.SplitHostPort(b)
		switch {
		case err != nil:
			problems = append(problems, where+" is not host:port (an IPv6 address goes in brackets: [::1]:9092)")
		case host == "":
			problems = append(problems, where+" has no host")
		case net.ParseIP(host) == nil && !hostnameRE.MatchString(host):
			problems = append(problems, where+" has a host name with characters no host name holds")
		case !validPort(port):
			problems = append(problems, where+" has a port out of range (1-65535)")
		}
	}
	return problems
}

// hostnameRE is what a host name may hold: letters, digits, '-', '_' and
// dots between labels.
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$`)

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// splitBrokers splits the bootstrap servers at commas, trimmed, empty
// entries left out.
func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func adapt(g *genconfig.Config) *Config {
	apiURL := strings.TrimRight(g.APIURL, "/")
	if u, err := url.Parse(apiURL); err == nil {
		apiURL = u.String() // the scheme in lower case: HTTPS:// works as https://
	}
	c := &Config{
		ProjectID:       g.ProjectID,
		APIKey:          Secret(g.APIKey),
		InferTimestamp:  g.InferTimestamp,
		APIURL:          apiURL,
		Compression:     string(g.Compression),
		SkipOversized:   g.OversizedRecords == genconfig.ConfigOversizedRecordsSkip,
		Nonconforming:   policies[g.NonconformingRecords],
		Tokens:          tokenPolicies[g.UniquenessToken],
		DeliveryTimeout: time.Duration(g.DeliveryTimeoutSeconds) * time.Second,
		Producers:       g.KafkaProducers,
		FailRefused:     g.RefusedRecords == genconfig.ConfigRefusedRecordsFail,
	}
	if g.Transport == genconfig.ConfigTransportHttps {
		c.Transport = HTTPS
	}
	c.Brokers = splitBrokers(g.KafkaBootstrapServers)
	return c
}

var missingRE = regexp.MustCompile(`'([^']*)'`)

// describe turns validator problems into "field: what is wrong" lines. The
// validator's messages never quote the value; ours neither.
func describe(ps []schemas.Problem, nearMiss map[string]string) []string {
	var out []string
	for _, p := range ps {
		field := strings.TrimPrefix(p.Location, "/")
		if field == "" {
			if names, ok := strings.CutPrefix(p.Message, "missing properties: "); ok {
				for _, m := range missingRE.FindAllStringSubmatch(names, -1) {
					if given, ok := nearMiss[m[1]]; ok {
						out = append(out, fmt.Sprintf("%s: is required (the config has %q: did you mean %s?)", m[1], shortName(given), m[1]))
					} else {
						out = append(out, m[1]+": is required")
					}
				}
				continue
			}
			field = "config"
		}
		msg := p.Message
		if strings.HasPrefix(msg, "does not match pattern") {
			msg = "has the wrong form: " + patternHints[field]
			if patternHints[field] == "" {
				msg = "has the wrong form (see the field's description)"
			}
		}
		out = append(out, field+": "+msg)
	}
	return out
}

// patternHints say what a field's pattern asks for, in words.
var patternHints = map[string]string{
	"project_id":              "copy the Project ID from the Access tab of your Keen project (letters and digits only)",
	"kafka_bootstrap_servers": "give a comma-separated list of host:port",
	"api_url":                 "give an https:// URL (TLS is required)",
}

// redactValues drops quoted values from a decoder message.
func redactValues(s string) string {
	return regexp.MustCompile(`"[^"]*"`).ReplaceAllString(s, `"…"`)
}

// String describes the config for logs, without the key.
func (c *Config) String() string {
	oversized := "fail"
	if c.SkipOversized {
		oversized = "skip"
	}
	producers := "auto"
	if c.Producers > 0 {
		producers = fmt.Sprint(c.Producers)
	}
	refused := "skip"
	if c.FailRefused {
		refused = "fail"
	}
	return fmt.Sprintf("project_id=%s transport=%s infer_timestamp=%t kafka_bootstrap_servers=%s api_url=%s compression=%s oversized_records=%s nonconforming_records=%s uniqueness_token=%s delivery_timeout_seconds=%d kafka_producers=%s refused_records=%s",
		c.ProjectID, c.Transport, c.InferTimestamp, strings.Join(c.Brokers, ","), c.APIURL, c.Compression, oversized, c.Nonconforming, c.Tokens, int(c.DeliveryTimeout.Seconds()), producers, refused)
}
