package emulator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
)

func start(t *testing.T, opts Options) *Emulator {
	t.Helper()
	e, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func trust(t *testing.T, e *Emulator) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(e.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	if !pool.Equal(e.TrustPool()) {
		t.Fatal("TrustPool differs from ca.pem")
	}
	return pool
}

// saramaConfig is a producer config as the connector builds it: SASL/PLAIN
// over TLS, acks=all.
func saramaConfig(user, pass string, pool *x509.CertPool) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_0_0_0
	c.ClientID = "emulator-test"
	c.Net.TLS.Enable = true
	c.Net.TLS.Config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.Net.SASL.Enable = true
	c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	c.Net.SASL.Version = sarama.SASLHandshakeV1
	c.Net.SASL.User = user
	c.Net.SASL.Password = pass
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.Retry.Max = 1
	c.Metadata.Retry.Backoff = 50 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Retry.Max = 5
	c.Producer.Retry.Backoff = 50 * time.Millisecond
	return c
}

func producer(t *testing.T, e *Emulator, mutate ...func(*sarama.Config)) sarama.SyncProducer {
	t.Helper()
	c := saramaConfig(e.ProjectID(), e.APIKey(), trust(t, e))
	for _, m := range mutate {
		m(c)
	}
	p, err := sarama.NewSyncProducer(e.BrokerAddrs(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func send(p sarama.SyncProducer, topic string, values ...string) error {
	for _, v := range values {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}); err != nil {
			return err
		}
	}
	return nil
}

func TestSASL(t *testing.T) {
	e := start(t, Options{APIKey: "master-key", WriteKey: "write-key"})
	pool := trust(t, e)
	tests := []struct {
		name, user, pass string
		wantErr          error
	}{
		{"master key", e.ProjectID(), "master-key", nil},
		{"write key", e.ProjectID(), "write-key", nil},
		{"wrong key", e.ProjectID(), "nope", sarama.ErrSASLAuthenticationFailed},
		{"wrong project", "other", "master-key", sarama.ErrSASLAuthenticationFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := saramaConfig(tt.user, tt.pass, pool)
			c.Producer.Retry.Max = 0
			p, err := sarama.NewSyncProducer(e.BrokerAddrs(), c)
			if err == nil {
				err = send(p, "logins", `{"ok":true}`)
				p.Close()
			}
			if !errors.Is(err, tt.wantErr) && (tt.wantErr != nil || err != nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestTLSTrust(t *testing.T) {
	e := start(t, Options{})
	other := start(t, Options{}) // another CA
	c := saramaConfig(e.ProjectID(), e.APIKey(), trust(t, other))
	c.Metadata.Retry.Max = 0
	_, err := sarama.NewSyncProducer(e.BrokerAddrs(), c)
	if err == nil {
		t.Fatal("a client trusting another CA connected")
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) && !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want a certificate error, got %v", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust(t, other)}}}
	if _, err := client.Get(e.APIURL() + "/projects/keenlocal/events"); err == nil || !errors.As(err, &unknown) {
		t.Fatalf("HTTP: want an unknown-authority error, got %v", err)
	}
}

func TestProduceAndExtract(t *testing.T) {
	e := start(t, Options{})
	p := producer(t, e)
	if err := send(p, "purchases",
		`{"item":"golden widget","price":18446744073709551615,"keen":{"timestamp":"2021-08-04T12:27:48Z"}}`,
		`{"item":"silver widget","tags":["a","b"],"nested":{"ok":1}}`); err != nil {
		t.Fatal(err)
	}
	evs := extract(t, e, "purchases")
	if len(evs) != 2 {
		t.Fatalf("extracted %d events, want 2", len(evs))
	}
	byItem := map[string]map[string]any{}
	for _, ev := range evs {
		byItem[ev["item"].(string)] = ev
	}
	golden := byItem["golden widget"]
	if got := fmt.Sprint(golden["price"]); got != "18446744073709551615" {
		t.Errorf("price %s lost precision", got)
	}
	keen := golden["keen"].(map[string]any)
	if keen["timestamp"] != "2021-08-04T12:27:48Z" || keen["id"] == nil || keen["created_at"] == nil {
		t.Errorf("keen object %v", keen)
	}
	silver := byItem["silver widget"]["keen"].(map[string]any)
	if silver["timestamp"] != silver["created_at"] {
		t.Errorf("an event without keen.timestamp takes created_at: %v", silver)
	}
	cols := getJSON(t, e, e.APIURL()+"/projects/keenlocal/events", e.APIKey(), http.StatusOK)
	if !strings.Contains(cols, `"name":"purchases"`) || !strings.Contains(cols, `"count":2`) {
		t.Errorf("collections: %s", cols)
	}
	assertNoRejections(t, e)
}

func extract(t *testing.T, e *Emulator, collection string) []map[string]any {
	t.Helper()
	body := getJSON(t, e, e.APIURL()+"/projects/"+e.ProjectID()+"/queries/extraction?event_collection="+collection, e.APIKey(), http.StatusOK)
	var out struct {
		Result []map[string]any `json:"result"`
	}
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Result
}

func httpClient(t *testing.T, e *Emulator) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust(t, e)}}, Timeout: 30 * time.Second}
}

func call(t *testing.T, e *Emulator, method, url, key string) (int, http.Header, string) {
	t.Helper()
	resp, err := do(t, e, method, url, key, "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// do makes one request to the emulator's API with key (none when empty)
// and body (none when empty).
func do(t *testing.T, e *Emulator, method, url, key, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", key)
	}
	return httpClient(t, e).Do(req)
}

// eventsURL is the bulk API's address.
func eventsURL(e *Emulator) string { return e.APIURL() + "/projects/" + e.ProjectID() + "/events" }

func getJSON(t *testing.T, e *Emulator, url, key string, want int) string {
	t.Helper()
	status, _, body := call(t, e, http.MethodGet, url, key)
	if status != want {
		t.Fatalf("GET %s: %d %s, want %d", url, status, body, want)
	}
	return body
}

func assertNoRejections(t *testing.T, e *Emulator) {
	t.Helper()
	rej, err := e.Rejected(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) != 0 {
		t.Fatalf("rejected: %+v", rej)
	}
}

func TestDeleteSemantics(t *testing.T) {
	e := start(t, Options{})
	p := producer(t, e)
	if err := send(p, "visits", `{"n":1}`, `{"n":2}`); err != nil {
		t.Fatal(err)
	}
	if err := send(p, "other", `{"n":1}`); err != nil {
		t.Fatal(err)
	}
	url := e.APIURL() + "/projects/keenlocal/events/visits"
	if status, _, body := call(t, e, http.MethodDelete, url, e.APIKey()); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	// A collection Keen does not know is a resource it does not know.
	if status, _, body := call(t, e, http.MethodDelete, e.APIURL()+"/projects/keenlocal/events/never_written", e.APIKey()); status != http.StatusNotFound || !strings.Contains(body, `"error_code":"ResourceNotFoundError"`) {
		t.Fatalf("deleting an unknown collection: %d %s, want 404 ResourceNotFoundError", status, body)
	}
	if err := send(p, "visits", `{"n":3}`); err != nil {
		t.Fatal(err)
	}
	evs := extract(t, e, "visits")
	if len(evs) != 1 || fmt.Sprint(evs[0]["n"]) != "3" {
		t.Fatalf("after delete: %v, want only n=3", evs)
	}
	if got := extract(t, e, "other"); len(got) != 1 {
		t.Fatalf("delete touched another collection: %v", got)
	}
}

func TestHTTPErrors(t *testing.T) {
	e := start(t, Options{APIKey: "master-key", WriteKey: "write-key"})
	base := e.APIURL() + "/projects/keenlocal"
	tests := []struct {
		name, method, url, key string
		status                 int
		code                   string
	}{
		{"wrong key", http.MethodGet, base + "/events", "bogus", 401, "InvalidApiKeyError"},
		{"no key", http.MethodDelete, base + "/events/x", "", 401, "InvalidApiKeyError"},
		{"write key on delete", http.MethodDelete, base + "/events/x", "write-key", 403, "InsufficientPermissionsError"},
		{"unknown project", http.MethodGet, e.APIURL() + "/projects/nope/events", "master-key", 404, "ProjectNotFoundError"},
		{"extraction without collection", http.MethodGet, base + "/queries/extraction", "master-key", 400, "MissingRequiredPropertyError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := call(t, e, tt.method, tt.url, tt.key)
			var kerr struct {
				Message   string `json:"message"`
				ErrorCode string `json:"error_code"`
			}
			if err := json.Unmarshal([]byte(body), &kerr); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if status != tt.status || kerr.ErrorCode != tt.code || kerr.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", status, kerr, tt.status, tt.code)
			}
		})
	}
	// api_key as a query parameter works too, as on Keen.
	getJSON(t, e, base+"/events?api_key=master-key", "", http.StatusOK)
}

func TestEventRules(t *testing.T) {
	long := strings.Repeat("p", 256)
	tests := []struct {
		name       string
		collection string
		value      string
		reason     string // "" means stored
	}{
		{"plain object", "rules", `{"a":1}`, ""},
		{"not json", "rules", `{"a":`, "event is not JSON"},
		{"not an object", "rules", `[1,2]`, "not an object"},
		{"two objects", "rules", `{"a":1}{"b":2}`, "data after its JSON object"},
		{"dot in name", "rules", `{"a.b":1}`, `contains a '.'`},
		{"nested dot", "rules", `{"x":{"a.b":1}}`, `"x.a.b" contains a '.'`},
		{"dollar", "rules", `{"$a":1}`, `starts with '$'`},
		{"255 characters", "rules", `{"` + long[:255] + `":1}`, ""},
		{"256 characters", "rules", `{"` + long + `":1}`, "256 or longer"},
		{"array of primitives", "rules", `{"a":[1,"x",null,true]}`, ""},
		{"array of objects", "rules", `{"a":[{"b":1}]}`, "arrays may hold only primitives"},
		{"array of arrays", "rules", `{"a":[[1]]}`, "arrays may hold only primitives"},
		{"keen not an object", "rules", `{"keen":"x"}`, "keen is a JSON string"},
		{"keen writable keys", "rules", `{"keen":{"timestamp":"2020-01-01T00:00:00.123Z","addons":[],"location":{"coordinates":[1,2]},"uniqueness_token":"u"}}`, ""},
		{"keen.addons, an array of objects", "rules", `{"keen":{"addons":[{"name":"keen:ip_to_geo","input":{"ip":"ip"},"output":"geo"}]}}`, ""},
		{"array of objects under a property named keen", "rules", `{"x":{"keen":{"addons":[{"a":1}]}}}`, "arrays may hold only primitives"},
		{"uniqueness token of 64 characters", "rules", `{"keen":{"uniqueness_token":"` + strings.Repeat("u", 64) + `"}}`, ""},
		{"uniqueness token of 65 characters", "rules", `{"keen":{"uniqueness_token":"` + strings.Repeat("u", 65) + `"}}`, "over 64"},
		{"uniqueness token a number", "rules", `{"keen":{"uniqueness_token":7}}`, "not a string"},
		{"keen unknown key", "rules", `{"keen":{"foo":1}}`, "keen.foo is not a writable keen property"},
		{"timestamp with offset", "rules", `{"keen":{"timestamp":"2020-01-01T00:00:00+02:00"}}`, ""},
		{"timestamp without zone", "rules", `{"keen":{"timestamp":"2020-01-01T10:11"}}`, ""},
		{"timestamp not iso", "rules", `{"keen":{"timestamp":"1999/12/15 14:44 utc"}}`, "not ISO-8601"},
		{"timestamp out of range", "rules", `{"keen":{"timestamp":"2020-13-01T00:00:00Z"}}`, "not a valid time"},
		{"timestamp a number", "rules", `{"keen":{"timestamp":1628080068}}`, "not a string"},
		{"numbers a double holds", "rules", `{"a":-0,"b":1e-400,"c":[1.7976931348623157e308]}`, ""},
		{"number beyond a double", "rules", `{"a":1e400}`, "outside the range of a double"},
		{"number beyond a double in an array", "rules", `{"a":[1,-2e308]}`, "outside the range of a double"},
		{"surrogate pair", "rules", `{"a":"\ud83d\ude00","b":"\\ud800"}`, ""},
		{"lone surrogate", "rules", `{"a":"x\ud800"}`, "lone UTF-16 surrogate"},
		{"lone low surrogate in a name", "rules", `{"\udc00":1}`, "lone UTF-16 surrogate"},
		{"collection with dots inside", "orders.v2", `{"a":1}`, ""},
		{"collection starting with _", "_raw", `{"a":1}`, "starts with _"},
		{"collection ending with .", "raw.", `{"a":1}`, "starts or ends with ."},
		{"collection of 65 characters", strings.Repeat("c", 65), `{"a":1}`, "over 64"},
	}
	e := start(t, Options{})
	p := producer(t, e)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := fmt.Sprintf("case-%d", i)
			// Each case goes to its own copy of the collection name when the
			// name is valid, so that stored events can be told apart.
			if err := send(p, tt.collection, tt.value); err != nil {
				t.Fatal(err)
			}
			rej, err := e.Rejected(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			var got *Rejection
			for j := range rej {
				if rej[j].Value == tt.value && rej[j].Collection == tt.collection {
					got = &rej[j]
				}
			}
			switch {
			case tt.reason == "" && got != nil:
				t.Fatalf("%s rejected: %s", marker, got.Reason)
			case tt.reason != "" && got == nil:
				t.Fatalf("%s stored, want rejected for %q", marker, tt.reason)
			case tt.reason != "" && !strings.Contains(got.Reason, tt.reason):
				t.Fatalf("reason %q, want %q", got.Reason, tt.reason)
			}
		})
	}
	body := getJSON(t, e, e.RejectedURL(), "", http.StatusOK)
	if !strings.Contains(body, `"reason"`) {
		t.Fatalf("rejected endpoint: %s", body)
	}
	// The same rules over HTTPS, for every case that is one JSON value (the
	// others cannot be put in a request): Keen's answer for the event says
	// success or names the error, and a refused event is a rejection too.
	for _, tt := range tests {
		if !json.Valid([]byte(tt.value)) {
			continue
		}
		t.Run("https/"+tt.name, func(t *testing.T) {
			status, answer := postEvents(t, e, e.APIKey(), fmt.Sprintf(`{%q:[%s]}`, tt.collection, tt.value))
			if status != http.StatusOK || len(answer[tt.collection]) != 1 {
				t.Fatalf("%d %v", status, answer)
			}
			got := answer[tt.collection][0]
			switch {
			case tt.reason == "" && !got.Success:
				t.Fatalf("refused: %+v", got.Error)
			case tt.reason != "" && (got.Success || got.Error == nil || !strings.Contains(got.Error.Description, tt.reason) || got.Error.Name == ""):
				t.Fatalf("answer %+v, want refused for %q", got, tt.reason)
			}
			if tt.reason != "" {
				rej, err := e.Rejected(ctx(t))
				if err != nil {
					t.Fatal(err)
				}
				if last := rej[len(rej)-1]; last.Partition != HTTPSPartition || last.Value != tt.value {
					t.Fatalf("last rejection %+v", last)
				}
			}
		})
	}
}

// postEvents sends a bulk request with key and returns the status and
// Keen's per-event answer.
func postEvents(t *testing.T, e *Emulator, key, body string) (int, map[string][]bulkResult) {
	t.Helper()
	resp, err := do(t, e, http.MethodPost, eventsURL(e), key, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var answer map[string][]bulkResult
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &answer); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
	}
	return resp.StatusCode, answer
}

// TestBulkEvents: Keen's bulk API answers per event and in order, keeps
// one event per uniqueness token, takes the write key, and refuses a wrong
// key or project; its faults fail, drop or delay requests.
func TestBulkEvents(t *testing.T) {
	e := start(t, Options{WriteKey: "write-key"})
	status, answer := postEvents(t, e, "write-key", `{"a":[{"n":1},{"$bad":2},{"n":3,"keen":{"uniqueness_token":"t"}}],"b":[{"n":4},{"n":5,"keen":{"uniqueness_token":"t"}}]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if a := answer["a"]; len(a) != 3 || !a[0].Success || a[1].Success || a[1].Error.Name != "InvalidPropertyNameError" || !a[2].Success {
		t.Fatalf("collection a: %+v", a)
	}
	if b := answer["b"]; len(b) != 2 || !b[0].Success || !b[1].Success {
		t.Fatalf("collection b: %+v", b)
	}
	// A token is a collection's: the same token in another collection is
	// another event, and again in the same one a duplicate, answered as kept.
	if _, again := postEvents(t, e, e.APIKey(), `{"a":[{"n":6,"keen":{"uniqueness_token":"t"}}]}`); len(again["a"]) != 1 || !again["a"][0].Success {
		t.Fatalf("a duplicate: %+v", again)
	}
	if n := len(extract(t, e, "a")); n != 2 {
		t.Fatalf("%d events in a, want 2 (the refused one and the duplicate left out)", n)
	}
	if n := len(extract(t, e, "b")); n != 2 {
		t.Fatalf("%d events in b, want 2", n)
	}
	if dups, err := e.Duplicates(ctx(t)); err != nil || dups["a"] != 1 {
		t.Fatalf("duplicates %v %v", dups, err)
	}
	if status, _ := postEvents(t, e, "wrong", `{"a":[{"n":1}]}`); status != http.StatusUnauthorized {
		t.Fatalf("a wrong key: %d", status)
	}
	if status, _ := postEvents(t, e, e.APIKey(), `{"a":[{"n":1}]`); status != http.StatusBadRequest {
		t.Fatalf("a body that is not JSON: %d", status)
	}

	e.FailEvents(1, http.StatusTooManyRequests, "2")
	if status, _ := postEvents(t, e, e.APIKey(), `{}`); status != http.StatusOK {
		t.Fatalf("a request of no events met the fault: %d", status)
	}
	resp, err := do(t, e, http.MethodPost, eventsURL(e), e.APIKey(), `{"x":[{"n":1}]}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || len(extract(t, e, "x")) != 0 {
		t.Fatalf("429 fault: %d %v", resp.StatusCode, resp.Header)
	}
	e.DropEventsConnections(1)
	if resp, err := do(t, e, http.MethodPost, eventsURL(e), e.APIKey(), `{"dropped":[{"n":1}]}`); err == nil {
		resp.Body.Close()
		t.Fatalf("a dropped connection answered %d", resp.StatusCode)
	}
	if n := len(extract(t, e, "dropped")); n != 1 {
		t.Fatalf("the dropped request's event: %d stored, want 1", n)
	}
	e.DelayEvents(300*time.Millisecond, 1)
	began := time.Now()
	if status, _ := postEvents(t, e, e.APIKey(), `{"late":[{"n":1}]}`); status != http.StatusOK || time.Since(began) < 300*time.Millisecond {
		t.Fatalf("a delayed answer: %d after %v", status, time.Since(began))
	}
	if n := e.BulkRequests(); n != 7 { // the wrong key's is refused unread
		t.Fatalf("%d bulk requests read, want 7", n)
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2021-08-04T12:27:48Z", "2021-08-04T12:27:48Z"},
		{"2021-08-04T12:27:48.151Z", "2021-08-04T12:27:48.151Z"},
		{"2021-08-04T14:27:48+02:00", "2021-08-04T12:27:48Z"},
		{"2021-08-04T14:27:48+0200", "2021-08-04T12:27:48Z"},
		{"2021-08-04T12:27", "2021-08-04T12:27:00Z"},
		{"2021-08-04", "2021-08-04T00:00:00Z"},
		{"2021-08-04 12:27:48", "2021-08-04T12:27:48Z"},
		{"2021-02-30", ""},
		{"yesterday", ""},
		{"2021-08-04T12:27:48.1234567890Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTimestamp(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted, got %v", got)
				}
				return
			}
			if err != nil || got.Format(time.RFC3339Nano) != tt.want {
				t.Fatalf("got %v %v, want %s", got, err, tt.want)
			}
		})
	}
}

func TestFailProduce(t *testing.T) {
	t.Run("retriable", func(t *testing.T) {
		e := start(t, Options{})
		p := producer(t, e)
		e.FailProduce("", 2, kerr.NotLeaderForPartition)
		if err := send(p, "retried", `{"a":1}`); err != nil {
			t.Fatalf("a producer with retries must get through: %v", err)
		}
		if evs := extract(t, e, "retried"); len(evs) != 1 {
			t.Fatalf("got %d events, want 1", len(evs))
		}
	})
	t.Run("fatal", func(t *testing.T) {
		e := start(t, Options{})
		p := producer(t, e)
		e.FailProduce("denied", -1, kerr.TopicAuthorizationFailed)
		err := send(p, "denied", `{"a":1}`)
		if !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
			t.Fatalf("got %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		if err := send(p, "allowed", `{"a":1}`); err != nil {
			t.Fatalf("a fault on one topic must not touch another: %v", err)
		}
	})
}

func TestDelayProduce(t *testing.T) {
	e := start(t, Options{})
	p := producer(t, e)
	if err := send(p, "warm", `{"a":1}`); err != nil { // metadata and connections
		t.Fatal(err)
	}
	e.DelayProduce(300*time.Millisecond, 1)
	began := time.Now()
	if err := send(p, "warm", `{"a":2}`); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 300*time.Millisecond {
		t.Fatalf("produce answered after %v, want at least the 300ms delay", d)
	}
}

func TestDropProduceConnections(t *testing.T) {
	e := start(t, Options{})
	p := producer(t, e)
	e.DropProduceConnections(1)
	if err := send(p, "dropped", `{"a":1}`); err != nil {
		t.Fatalf("a producer with retries must reconnect: %v", err)
	}
	if evs := extract(t, e, "dropped"); len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	unretried := producer(t, e, func(c *sarama.Config) { c.Producer.Retry.Max = 0 })
	e.DropProduceConnections(1)
	if err := send(unretried, "dropped", `{"a":2}`); err == nil {
		t.Fatal("a dropped connection must fail a producer without retries")
	}
}

func TestFailDeletes(t *testing.T) {
	e := start(t, Options{})
	if err := send(producer(t, e), "c", `{"n":1}`); err != nil {
		t.Fatal(err)
	}
	e.FailDeletes(1, http.StatusTooManyRequests, "7")
	e.FailDeletes(1, http.StatusTooManyRequests, "")
	e.FailDeletes(1, http.StatusInternalServerError, "")
	url := e.APIURL() + "/projects/keenlocal/events/c"
	wants := []struct {
		status     int
		retryAfter string
	}{{429, "7"}, {429, ""}, {500, ""}, {204, ""}}
	for i, w := range wants {
		status, h, _ := call(t, e, http.MethodDelete, url, e.APIKey())
		if status != w.status || h.Get("Retry-After") != w.retryAfter {
			t.Fatalf("call %d: %d Retry-After %q, want %d %q", i, status, h.Get("Retry-After"), w.status, w.retryAfter)
		}
	}
	reqs := e.Requests()
	if len(reqs) != 4 || reqs[3].Status != 204 || reqs[0].Method != http.MethodDelete {
		t.Fatalf("request log %+v", reqs)
	}
}

func TestBlackhole(t *testing.T) {
	e := start(t, Options{Blackhole: true})
	p := producer(t, e)
	if err := send(p, "void", `{"a":1}`, `not even json`); err != nil {
		t.Fatal(err)
	}
	// Over HTTPS too: every event answered as kept, none stored.
	if status, answer := postEvents(t, e, e.APIKey(), `{"void":[{"a":1},{"$b":2}]}`); status != http.StatusOK || len(answer["void"]) != 2 || !answer["void"][0].Success || !answer["void"][1].Success {
		t.Fatalf("bulk request: %d %v", status, answer)
	}
	cols, err := e.Collections(ctx(t))
	if err != nil || len(cols) != 0 {
		t.Fatalf("blackhole stored %v (%v)", cols, err)
	}
}

func TestReadyFile(t *testing.T) {
	e := start(t, Options{ProjectID: "proj1", APIKey: "k1"})
	path := filepath.Join(t.TempDir(), "ready.json")
	if err := e.WriteReadyFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg ConnectorConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg != e.Config() || cfg.ProjectID != "proj1" || cfg.APIKey != "k1" || !strings.HasPrefix(cfg.APIURL, "https://127.0.0.1:") {
		t.Fatalf("ready file %+v", cfg)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".ready-*"))
	if len(matches) != 0 {
		t.Fatalf("temporary files left: %v", matches)
	}
}

func TestRestartKeepsData(t *testing.T) {
	e := start(t, Options{DataDir: t.TempDir()})
	p := producer(t, e)
	if err := send(p, "kept", `{"n":1}`, `{"n":2}`); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteCollection(ctx(t), "kept"); err != nil {
		t.Fatal(err)
	}
	if err := send(p, "kept", `{"n":3}`); err != nil {
		t.Fatal(err)
	}
	addrs := e.BrokerAddrs()
	quick := producer(t, e, func(c *sarama.Config) { c.Producer.Retry.Max = 0; c.Metadata.Retry.Max = 0 })
	e.StopKafka()
	if err := send(quick, "kept", `{"n":4}`); err == nil {
		t.Fatal("a send succeeded with the brokers down")
	}
	if err := e.StartKafka(); err != nil {
		t.Fatal(err)
	}
	if got := e.BrokerAddrs(); strings.Join(got, ",") != strings.Join(addrs, ",") {
		t.Fatalf("brokers moved from %v to %v", addrs, got)
	}
	if err := send(p, "kept", `{"n":5}`); err != nil {
		t.Fatalf("the producer must reconnect after the restart: %v", err)
	}
	evs := extract(t, e, "kept")
	var ns []string
	for _, ev := range evs {
		ns = append(ns, fmt.Sprint(ev["n"]))
	}
	sort.Strings(ns)
	if strings.Join(ns, ",") != "3,5" {
		t.Fatalf("after the restart: %v, want 3 and 5 (1 and 2 were deleted before it)", ns)
	}
}

// TestReadBackWhileLeadersMove: the emulator's consumer reads a partition
// again from an earlier offset when its leader moves; each stored message
// is still filed once.
func TestReadBackWhileLeadersMove(t *testing.T) {
	e := start(t, Options{Partitions: 1})
	p := producer(t, e)
	for i := range 30 {
		if err := send(p, "moving", fmt.Sprintf(`{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
		// Every event read back before the leader moves, so that the
		// consumer is at the end of the partition when it does.
		if evs := extract(t, e, "moving"); len(evs) != i+1 {
			t.Fatalf("after %d sends and %d leader moves: %d events", i+1, i, len(evs))
		}
		cur := e.Cluster().LeaderFor("moving", 0)
		if err := e.Cluster().MoveTopicPartition("moving", 0, (cur+1)%3); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUniquenessTokens: the first event with a token in a collection is
// stored; later ones there are dropped and counted; other collections and
// events without a token are not affected; a delete forgets the tokens of
// the events it removes.
func TestUniquenessTokens(t *testing.T) {
	e := start(t, Options{Partitions: 1}) // one partition: "first" is the order sent
	p := producer(t, e)
	if err := send(p, "a", `{"n":1,"keen":{"uniqueness_token":"t1"}}`, `{"n":2,"keen":{"uniqueness_token":"t1"}}`,
		`{"n":3,"keen":{"uniqueness_token":"t2"}}`, `{"n":4}`, `{"n":5}`); err != nil {
		t.Fatal(err)
	}
	if err := send(p, "b", `{"n":6,"keen":{"uniqueness_token":"t1"}}`); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range extract(t, e, "a") {
		got = append(got, fmt.Sprint(ev["n"]))
	}
	if strings.Join(got, ",") != "1,3,4,5" || len(extract(t, e, "b")) != 1 {
		t.Fatalf("stored %v in a and %d in b", got, len(extract(t, e, "b")))
	}
	dups, err := e.Duplicates(ctx(t))
	if err != nil || dups["a"] != 1 || dups["b"] != 0 {
		t.Fatalf("duplicates %v %v", dups, err)
	}
	if status, _, body := call(t, e, http.MethodGet, "https://"+e.httpAddr+"/emulator/duplicates", e.APIKey()); status != 200 || !strings.Contains(body, `"a":1`) {
		t.Fatalf("endpoint: %d %s", status, body)
	}
	if err := e.DeleteCollection(ctx(t), "a"); err != nil {
		t.Fatal(err)
	}
	if err := send(p, "a", `{"n":7,"keen":{"uniqueness_token":"t1"}}`); err != nil {
		t.Fatal(err)
	}
	if evs := extract(t, e, "a"); len(evs) != 1 {
		t.Fatalf("after the delete, a token of a deleted event: %d events", len(evs))
	}
}

// TestFilteredDeletes: Keen's delete with filters removes the matching
// events produced before it, on nested paths and keen.* properties too.
func TestFilteredDeletes(t *testing.T) {
	evs := []string{
		`{"n":1,"g":1,"user":{"plan":"pro"},"keen":{"timestamp":"2020-01-01T00:00:00Z"}}`,
		`{"n":2,"g":2,"user":{"plan":"free"},"keen":{"timestamp":"2021-01-01T00:00:00Z"}}`,
		`{"n":3,"user":{"plan":"pro"},"keen":{"timestamp":"2022-01-01T00:00:00Z"}}`,
	}
	tests := []struct {
		name    string
		filters string
		left    string
	}{
		{"eq", `[{"property_name":"g","operator":"eq","property_value":1}]`, "2,3"},
		{"ne needs the property", `[{"property_name":"g","operator":"ne","property_value":2}]`, "2,3"},
		{"exists false", `[{"property_name":"g","operator":"exists","property_value":false}]`, "1,2"},
		{"nested", `[{"property_name":"user.plan","operator":"eq","property_value":"pro"}]`, "2"},
		{"keen.timestamp", `[{"property_name":"keen.timestamp","operator":"lt","property_value":"2021-06-01T00:00:00Z"}]`, "3"},
		{"in", `[{"property_name":"n","operator":"in","property_value":[1,3]}]`, "2"},
		{"all filters", `[{"property_name":"user.plan","operator":"eq","property_value":"pro"},{"property_name":"n","operator":"gte","property_value":2}]`, "1,2"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, Options{Partitions: 1})
			p := producer(t, e)
			c := fmt.Sprintf("f%d", i)
			if err := send(p, c, evs...); err != nil {
				t.Fatal(err)
			}
			u := e.APIURL() + "/projects/keenlocal/events/" + c + "?filters=" + url.QueryEscape(tt.filters)
			if status, _, body := call(t, e, http.MethodDelete, u, e.APIKey()); status != http.StatusNoContent {
				t.Fatalf("delete: %d %s", status, body)
			}
			if err := send(p, c, `{"n":4,"g":1}`); err != nil { // produced after: kept
				t.Fatal(err)
			}
			var left []string
			for _, ev := range extract(t, e, c) {
				if n := fmt.Sprint(ev["n"]); n != "4" {
					left = append(left, n)
				}
			}
			if strings.Join(left, ",") != tt.left {
				t.Fatalf("left %v, want %s", left, tt.left)
			}
		})
	}
	e := start(t, Options{})
	if err := send(producer(t, e), "x", `{"a":1}`); err != nil {
		t.Fatal(err)
	}
	bad := e.APIURL() + "/projects/keenlocal/events/x?filters=" + url.QueryEscape(`[{"property_name":"a","operator":"like","property_value":1}]`)
	if status, _, _ := call(t, e, http.MethodDelete, bad, e.APIKey()); status != http.StatusBadRequest {
		t.Fatalf("an unknown operator: %d", status)
	}
}

func TestLatency(t *testing.T) {
	const d = 60 * time.Millisecond
	e := start(t, Options{Latency: d})
	p := producer(t, e)
	began := time.Now()
	if err := send(p, "far", `{"a":1}`); err != nil { // connect: TLS, SASL, metadata, produce
		t.Fatal(err)
	}
	// TCP accept, TLS 1.3 (one round trip), SASL handshake + authenticate,
	// API versions, metadata, produce: at least six round trips.
	if took := time.Since(began); took < 6*d {
		t.Fatalf("connecting and producing took %v, want at least 6 round trips of %v", took, d)
	}
	for i := range 3 {
		began = time.Now()
		if err := send(p, "far", fmt.Sprintf(`{"a":%d}`, i+2)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(began); took < d {
			t.Fatalf("a produce round trip took %v, want at least %v", took, d)
		}
	}
	if events := extract(t, e, "far"); len(events) != 4 {
		t.Fatalf("%d events landed, want 4", len(events))
	}
	began = time.Now() // the HTTPS API is as far: a new connection, TLS, the request
	if status, _ := postEvents(t, e, e.APIKey(), `{"far":[{"a":5}]}`); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if took := time.Since(began); took < 2*d {
		t.Fatalf("a bulk request over a new connection took %v, want at least 2 round trips of %v", took, d)
	}
}

func TestDelayedConn(t *testing.T) {
	const d = 40 * time.Millisecond
	ln, err := listenDelayed(d)("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	server := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			server <- err
			return
		}
		for i := range 100 {
			if _, err := fmt.Fprintf(c, "%03d,", i); err != nil {
				server <- err
				return
			}
		}
		server <- c.Close() // what is queued still leaves
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	began := time.Now()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < d {
		t.Errorf("the bytes arrived after %v, before the delay of %v", took, d)
	}
	var want strings.Builder
	for i := range 100 {
		fmt.Fprintf(&want, "%03d,", i)
	}
	if string(got) != want.String() {
		t.Errorf("got %q, want the 100 writes in order", got)
	}
	if err := <-server; err != nil {
		t.Fatal(err)
	}
}

// TestEventsAreCopies: a caller that changes the events it read (a test
// that sets metadata aside before comparing) changes nothing the emulator
// holds, nor what a later filtered delete matches.
func TestEventsAreCopies(t *testing.T) {
	e := start(t, Options{Partitions: 1})
	if err := send(producer(t, e), "c", `{"g":1,"user":{"plan":"pro"},"tags":["a"]}`); err != nil {
		t.Fatal(err)
	}
	evs, err := e.Events(ctx(t), "c")
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	delete(evs[0], "g")
	delete(evs[0]["user"].(map[string]any), "plan")
	evs[0]["tags"].([]any)[0] = "changed"
	again, err := e.Events(ctx(t), "c")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%v %v %v", again[0]["g"], again[0]["user"], again[0]["tags"]); got != "1 map[plan:pro] [a]" {
		t.Fatalf("the stored event changed with the copy: %s", got)
	}
	if err := e.DeleteEvents(ctx(t), "c", []Filter{{PropertyName: "g", Operator: "exists", PropertyValue: false}}); err != nil {
		t.Fatal(err)
	}
	if n := len(extract(t, e, "c")); n != 1 {
		t.Fatalf("a delete of events without g removed the one that has it: %d left", n)
	}
}

// TestCodecs: the emulator counts stored events by the compression of the
// batch that carried them, so a test can see which codec a client used.
func TestCodecs(t *testing.T) {
	e := start(t, Options{})
	for _, c := range []struct {
		name  string
		codec sarama.CompressionCodec
	}{{"none", sarama.CompressionNone}, {"gzip", sarama.CompressionGZIP}, {"snappy", sarama.CompressionSnappy}, {"lz4", sarama.CompressionLZ4}, {"zstd", sarama.CompressionZSTD}} {
		p := producer(t, e, func(sc *sarama.Config) { sc.Producer.Compression = c.codec })
		if err := send(p, "codec_"+c.name, `{"n":1}`, `{"n":2}`); err != nil {
			t.Fatal(err)
		}
		got, err := e.Codecs(ctx(t), "codec_"+c.name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[c.name] != 2 {
			t.Errorf("%s: codecs %v, want 2 events of %s", c.name, got, c.name)
		}
	}
}

// TestWaitEvents: a wait returns once the collections hold the events, as
// the consumer files them, and says how many they hold when ctx ends first.
func TestWaitEvents(t *testing.T) {
	e := start(t, Options{})
	p := producer(t, e)
	go func() {
		for i := range 3 {
			if err := send(p, []string{"w1", "w2"}[i%2], fmt.Sprintf(`{"n":%d}`, i)); err != nil {
				t.Error(err)
			}
		}
	}()
	if held, err := e.WaitEvents(ctx(t), 3, "w1", "w2"); err != nil || held != 3 {
		t.Fatalf("held %d, %v", held, err)
	}
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if held, err := e.WaitEvents(short, 4, "w1", "w2"); !errors.Is(err, context.DeadlineExceeded) || held != 3 {
		t.Fatalf("held %d, %v: want 3 and the deadline", held, err)
	}
}

// TestRefusingAddr: nothing answers at the address until it is released,
// and the port stays taken meanwhile.
func TestRefusingAddr(t *testing.T) {
	addr, release, err := RefusingAddr()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("%s accepted a connection", addr)
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Fatalf("%s could be listened on by another", addr)
	}
}
