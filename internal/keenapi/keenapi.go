// Package keenapi is the connector's client of Keen's HTTP API: it deletes
// collections for truncating streams, proves that the key is the project's
// master key, and records events in bulk (the HTTPS transport's requests). It retries what is worth retrying (429 honouring
// Retry-After, 5xx, timeouts, refused connections) with backoff up to a
// bound, and classifies every failure for the user. Keen quotes the key in
// some error bodies, so no response body ever reaches an error message.
package keenapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"destination-keen/internal/config"
	"destination-keen/internal/failure"
)

// Client calls Keen's API for one project.
type Client struct {
	base    string // e.g. https://api.keen.io/3.0
	project string
	key     config.Secret
	hc      *http.Client
	// MaxWait bounds the time spent waiting between retries of one call;
	// default 5 minutes.
	MaxWait time.Duration
	// Backoff is the first wait between retries (doubling, at most 30 s)
	// when the server gives no Retry-After; default 1 s.
	Backoff time.Duration
	// Log receives a WARN per retry; default none.
	Log *slog.Logger
}

// New returns a client for the config's project and API. TLS is always
// verified against the system roots, which honour SSL_CERT_FILE.
func New(cfg *config.Config) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return &Client{
		base:    cfg.APIURL,
		project: cfg.ProjectID,
		key:     cfg.APIKey,
		hc:      &http.Client{Transport: tr, Timeout: 60 * time.Second},
		MaxWait: 5 * time.Minute,
		Backoff: time.Second,
		Log:     slog.New(slog.DiscardHandler),
	}
}

// UseHTTP1 makes the client speak HTTP/1.1 over up to conns connections
// kept open, one request on each at a time, rather than HTTP/2 over one.
// For bulk requests of megabytes: HTTP/2 shares one connection's flow
// control window among the requests, and a far server's window updates
// come a round trip late, so a connection carries about one window (1 MiB
// with Go's server) per round trip: 10 MB/s at 100 ms, whatever the
// number of requests in flight. TCP connections each grow their own.
func (c *Client) UseHTTP1(conns int) {
	tr := c.hc.Transport.(*http.Transport)
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // no h2
	tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	tr.MaxIdleConnsPerHost = conns
	tr.MaxConnsPerHost = conns
}

// SetTimeout bounds each HTTP request (default 60 s).
func (c *Client) SetTimeout(d time.Duration) { c.hc.Timeout = d }

// Filter is one of Keen's query filters.
type Filter struct {
	PropertyName  string `json:"property_name"`
	Operator      string `json:"operator"` // eq, ne, lt, lte, gt, gte, in, exists, ...
	PropertyValue any    `json:"property_value"`
}

// DeleteEvents deletes the events of a collection that match every filter
// (all of them with none), with Keen's filtered delete: DELETE
// /projects/P/events/C?filters=[...]. A collection Keen does not know (404
// ResourceNotFoundError: the first sync of a new stream) has nothing to
// delete; existed says which it was. An unknown project is still a
// config_error.
func (c *Client) DeleteEvents(ctx context.Context, collection string, filters []Filter) (existed bool, err error) {
	u := c.base + "/projects/" + url.PathEscape(c.project) + "/events/" + url.PathEscape(collection)
	what := fmt.Sprintf("delete events of collection %q", collection)
	if len(filters) > 0 {
		b, err := json.Marshal(filters)
		if err != nil {
			return false, failure.Systemf(err, "Cannot %s: the filters cannot be written", what)
		}
		u += "?filters=" + url.QueryEscape(string(b))
	} else {
		what = fmt.Sprintf("delete collection %q", collection)
	}
	_, err = c.do(ctx, request{method: http.MethodDelete, url: u, what: what, retry: true})
	if se, ok := errors.AsType[*StatusError](err); ok && se.Status == http.StatusNotFound && se.ErrorCode == errResourceNotFound {
		return false, nil
	}
	return err == nil, err
}

// Keen's error_codes for an unknown resource (a collection) and an unknown
// project.
const (
	errResourceNotFound = "ResourceNotFoundError"
	errProjectNotFound  = "ProjectNotFoundError"
)

// CheckMasterKey makes one master-key call (listing the project's
// collections) without retrying, for check.
func (c *Client) CheckMasterKey(ctx context.Context) error {
	u := c.base + "/projects/" + url.PathEscape(c.project) + "/events"
	_, err := c.do(ctx, request{method: http.MethodGet, url: u, what: "call Keen's API with the master key"})
	return err
}

// MaxAnswerBytes bounds the body of a successful answer the client reads:
// a bulk answer is about 20 bytes per event.
const MaxAnswerBytes = 16 << 20

// PostEvents records events in bulk: body is {"<collection>": [event,
// ...], ...}, sent to POST /projects/P/events with the key, which may be a
// write key. It returns Keen's answer, one result per event (package bulk
// reads it). Network errors, 408, 429 (after its Retry-After) and 5xx are
// retried with backoff within MaxWait; a request retried after the
// connection broke may have been stored already, which uniqueness tokens
// make harmless. 401, 403 and 404 fail at once with what to fix.
func (c *Client) PostEvents(ctx context.Context, body []byte, events int) ([]byte, error) {
	u := c.base + "/projects/" + url.PathEscape(c.project) + "/events"
	return c.do(ctx, request{method: http.MethodPost, url: u, body: body, retry: true,
		what:      fmt.Sprintf("send %d %s to Keen's HTTPS API", events, plural(events, "event", "events")),
		forbidden: "the API key may not write events; use the project's Write Key or Master API Key, from the Access tab"})
}

// CheckWrite proves the key may record events without recording any: one
// bulk request with no collection. (Keen checks the key and project before
// it reads the events; an empty request records nothing.) check makes it
// once; a sync retries it as it retries its requests.
func (c *Client) CheckWrite(ctx context.Context, retry bool) error {
	u := c.base + "/projects/" + url.PathEscape(c.project) + "/events"
	_, err := c.do(ctx, request{method: http.MethodPost, url: u, body: []byte("{}"), what: "send events to Keen's HTTPS API", retry: retry,
		forbidden: "the API key may not write events; use the project's Write Key or Master API Key, from the Access tab"})
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// request is one call: what it does, for messages; whether to retry; what
// a 403 means for it.
type request struct {
	method, url, what string
	body              []byte // sent as JSON when not nil
	retry             bool
	forbidden         string // the message of a 403; default: not the master key
}

// StatusError is an HTTP answer that is not a success.
type StatusError struct {
	Status    int
	ErrorCode string // Keen's error_code, when the body had one
}

func (e *StatusError) Error() string {
	if e.ErrorCode != "" {
		return fmt.Sprintf("HTTP %d %s", e.Status, e.ErrorCode)
	}
	return fmt.Sprintf("HTTP %d", e.Status)
}

func (c *Client) do(ctx context.Context, r request) ([]byte, error) {
	var waited time.Duration
	backoff := c.Backoff
	what := r.what
	for attempt := 1; ; attempt++ {
		answer, wait, err := c.once(ctx, r)
		if err == nil {
			return answer, nil
		}
		if f, ok := errors.AsType[*failure.Error](err); ok && f.Kind != failure.Transient {
			f.Message = "Cannot " + what + ": " + f.Message
			return nil, f
		}
		if !r.retry || ctx.Err() != nil {
			return nil, failure.Transientf(err, "Cannot %s: %s", what, transientAdvice)
		}
		if wait <= 0 {
			wait = backoff
			backoff = min(backoff*2, 30*time.Second)
		}
		if waited+wait > c.MaxWait {
			return nil, failure.Transientf(err, "Cannot %s after %d attempts over %s: %s", what, attempt, waited.Round(time.Second), transientAdvice)
		}
		c.Log.Warn(fmt.Sprintf("Keen's API: %s failed (%v); retrying in %s", what, err, wait))
		select {
		case <-ctx.Done():
			return nil, failure.Transientf(ctx.Err(), "Cannot %s: the sync was stopped", what)
		case <-time.After(wait):
		}
		waited += wait
	}
}

const transientAdvice = "Keen's API is unreachable or overloaded; try the sync again later"

// once makes one request. A transient failure comes back as a plain error
// with the wait the server asked for; anything else is a *failure.Error.
func (c *Client) once(ctx context.Context, r request) ([]byte, time.Duration, error) {
	var reqBody io.Reader
	if r.body != nil {
		reqBody = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, reqBody)
	if err != nil {
		return nil, 0, failure.Configf(err, "the API URL is not usable")
	}
	req.Header.Set("Authorization", c.key.Reveal())
	req.Header.Set("User-Agent", "destination-keen")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if failure.IsTLSTrust(err) {
			return nil, 0, failure.Configf(scrubURL(err), "the TLS certificate of %s is not trusted; if a proxy intercepts TLS, add its CA to the system trust store or point SSL_CERT_FILE at it", req.URL.Host)
		}
		return nil, 0, scrubURL(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		answer, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes))
		if err != nil {
			return nil, 0, scrubURL(err) // the answer broke off: retried
		}
		return answer, 0, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	se := &StatusError{Status: resp.StatusCode}
	var kb struct {
		ErrorCode string `json:"error_code"`
	}
	if json.Unmarshal(body, &kb) == nil && len(kb.ErrorCode) < 64 {
		se.ErrorCode = kb.ErrorCode
	}
	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized:
		return nil, 0, failure.Configf(se, "Keen rejected the API key; copy the Master API Key from the project's Access tab")
	case s == http.StatusForbidden && r.forbidden != "":
		return nil, 0, failure.Configf(se, "%s", r.forbidden)
	case s == http.StatusForbidden:
		return nil, 0, failure.Configf(se, "the API key is not the project's master key; overwrite syncs and check need the Master API Key from the project's Access tab")
	case s == http.StatusNotFound && se.ErrorCode == errProjectNotFound:
		return nil, 0, failure.Configf(se, "Keen does not know project %q; check the Project ID", c.project)
	case s == http.StatusNotFound && se.ErrorCode == "":
		// Not Keen's JSON: the path is not Keen's API (api_url without /3.0).
		return nil, 0, failure.Configf(se, "api_url: the address answers 404 for Keen's API paths: it should end in /3.0, as https://api.keen.io/3.0 does")
	case s == http.StatusNotFound:
		return nil, 0, failure.Configf(se, "Keen's API answered 404 (%s) for project %q; check the Project ID and api_url", se.ErrorCode, c.project)
	case s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s >= 500:
		return nil, retryAfter(resp.Header.Get("Retry-After")), se
	default:
		return nil, 0, failure.Systemf(se, "Keen's API refused the request")
	}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// scrubURL keeps the cause of a transport error without the URL's query
// (none is sent today; this keeps it so).
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return ne
	}
	return err
}

// SetRootCAs replaces the system trust store (tests only).
func (c *Client) SetRootCAs(pool *x509.CertPool) {
	c.hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
}
