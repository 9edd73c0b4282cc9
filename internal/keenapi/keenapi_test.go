package keenapi

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"destination-keen/internal/config"
	"destination-keen/internal/failure"
	"destination-keen/tools/keenlocal/emulator"
)

const key = "SECRET-key-7f3a9c"

// server answers with the given statuses in turn (the last one repeats),
// errors with Keen's error_code code (default SomeError; "-" for a body
// that is not Keen's, as a server that is not Keen's API sends).
func server(t *testing.T, statuses []int, retryAfter string, code ...string) (*httptest.Server, *atomic.Int32) {
	errorCode := "SomeError"
	if len(code) > 0 {
		errorCode = code[0]
	}
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1)) - 1
		if r.Header.Get("Authorization") != key {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		s := statuses[min(n, len(statuses)-1)]
		if s == http.StatusTooManyRequests && retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s)
		switch {
		case s >= 400 && errorCode == "-":
			fmt.Fprint(w, "404 page not found")
		case s >= 400:
			fmt.Fprintf(w, `{"message":"Specified API Key is invalid. API Key: '%s'.","error_code":"%s"}`, key, errorCode)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func client(t *testing.T, srv *httptest.Server, trusted bool) *Client {
	c := New(&config.Config{ProjectID: "p1", APIKey: key, APIURL: srv.URL + "/3.0"})
	if trusted {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		c.hc.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool
	}
	c.Backoff = 10 * time.Millisecond
	c.MaxWait = 200 * time.Millisecond
	return c
}

func TestDeleteCollection(t *testing.T) {
	tests := []struct {
		name       string
		statuses   []int
		retryAfter string
		calls      int32
		kind       failure.Kind // checked when wantErr
		wantErr    string
		code       string // Keen's error_code; default SomeError
		existed    bool
	}{
		{"success", []int{204}, "", 1, 0, "", "", true},
		{"429 then success", []int{429, 429, 204}, "", 3, 0, "", "", true},
		{"429 with Retry-After", []int{429, 204}, "0", 2, 0, "", "", true},
		{"5xx then success", []int{500, 502, 503, 204}, "", 4, 0, "", "", true},
		{"5xx past the bound", []int{503}, "", 0, failure.Transient, "Cannot delete collection \"c\" after", "", false},
		{"Retry-After past the bound", []int{429}, "3600", 1, failure.Transient, "after 1 attempts", "", false},
		{"401", []int{401}, "", 1, failure.Config, "Keen rejected the API key", "", false},
		{"403", []int{403}, "", 1, failure.Config, "not the project's master key", "", false},
		{"404 unknown project", []int{404}, "", 1, failure.Config, `Keen does not know project "p1"`, "ProjectNotFoundError", false},
		{"404 another error", []int{404}, "", 1, failure.Config, `Keen's API answered 404 (SomeError) for project "p1"; check the Project ID and api_url`, "", false},
		{"404 from a server that is not Keen's API", []int{404}, "", 1, failure.Config, "api_url: the address answers 404 for Keen's API paths: it should end in /3.0, as https://api.keen.io/3.0 does", "-", false},
		{"404 unknown collection: nothing to delete", []int{404}, "", 1, 0, "", "ResourceNotFoundError", false},
		{"400", []int{400}, "", 1, failure.System, "refused the request", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := []string{}
			if tt.code != "" {
				code = append(code, tt.code)
			}
			srv, calls := server(t, tt.statuses, tt.retryAfter, code...)
			existed, err := client(t, srv, true).DeleteEvents(context.Background(), "c", nil)
			if existed != tt.existed {
				t.Errorf("existed %v, want %v", existed, tt.existed)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				f := failure.As(err)
				if err == nil || f.Kind != tt.kind || !strings.Contains(f.Message, tt.wantErr) {
					t.Fatalf("got %v (%s), want %s %q", err, f.Kind, tt.kind, tt.wantErr)
				}
				if strings.Contains(err.Error(), key) {
					t.Fatalf("the error quotes the key: %v", err)
				}
			}
			if tt.calls > 0 && calls.Load() != tt.calls {
				t.Fatalf("%d calls, want %d", calls.Load(), tt.calls)
			}
		})
	}
}

func TestUntrustedTLS(t *testing.T) {
	srv, calls := server(t, []int{204}, "")
	_, err := client(t, srv, false).DeleteEvents(context.Background(), "c", nil)
	f := failure.As(err)
	if f.Kind != failure.Config || !strings.Contains(f.Message, "not trusted") {
		t.Fatalf("got %v", err)
	}
	if calls.Load() != 0 {
		t.Fatal("no request may be sent over an untrusted connection")
	}
}

func TestConnectionRefused(t *testing.T) {
	addr := emulator.RefusedFor(t)
	c := New(&config.Config{ProjectID: "p1", APIKey: key, APIURL: "https://" + addr + "/3.0"})
	c.Backoff, c.MaxWait = 10*time.Millisecond, 50*time.Millisecond
	_, err := c.DeleteEvents(context.Background(), "c", nil)
	if f := failure.As(err); f.Kind != failure.Transient || !strings.Contains(f.Message, "unreachable") {
		t.Fatalf("got %v", err)
	}
	if err := c.CheckMasterKey(context.Background()); failure.As(err).Kind != failure.Transient {
		t.Fatalf("check: %v", err)
	}
}

func TestCheckDoesNotRetry(t *testing.T) {
	srv, calls := server(t, []int{503, 200}, "")
	if err := client(t, srv, true).CheckMasterKey(context.Background()); failure.As(err).Kind != failure.Transient {
		t.Fatalf("got %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d calls, want 1", calls.Load())
	}
}

func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "7": 7 * time.Second, "-1": 0, "soon": 0} {
		if got := retryAfter(v); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
	if d := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); d < 59*time.Minute {
		t.Errorf("HTTP date: %v", d)
	}
}

func TestTimeoutsAreRetriedThenTransient(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		select { // an API that never answers in time, and then not well
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := client(t, srv, true)
	c.SetTimeout(50 * time.Millisecond)
	_, err := c.DeleteEvents(context.Background(), "c", nil)
	if f := failure.As(err); f.Kind != failure.Transient || !strings.Contains(f.Message, "after") {
		t.Fatalf("got %v", err)
	}
	if calls.Load() < 2 {
		t.Fatalf("%d calls: a timeout must be retried", calls.Load())
	}
}

// TestDeleteEventsFilters: the filters go as Keen's query parameter, JSON.
func TestDeleteEventsFilters(t *testing.T) {
	var got string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.Path + " " + r.URL.Query().Get("filters")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	existed, err := client(t, srv, true).DeleteEvents(context.Background(), "my coll", []Filter{
		{PropertyName: "_airbyte_generation_id", Operator: "ne", PropertyValue: int64(7)},
	})
	want := `DELETE /3.0/projects/p1/events/my coll [{"property_name":"_airbyte_generation_id","operator":"ne","property_value":7}]`
	if err != nil || !existed || got != want {
		t.Fatalf("got %q (%v, %v)\nwant %q", got, existed, err, want)
	}
}

// TestPostEvents: the bulk request carries the body and the key, and its
// answer comes back; over HTTP/1.1 with UseHTTP1 even where the server
// offers HTTP/2, on connections kept for the next requests; a 403 says the
// key may not write, and 408 is retried.
func TestPostEvents(t *testing.T) {
	var protos, conns []string
	var mu sync.Mutex
	statuses := []int{http.StatusRequestTimeout, http.StatusOK, http.StatusOK, http.StatusForbidden}
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		protos, conns = append(protos, r.Proto), append(conns, r.RemoteAddr)
		mu.Unlock()
		if r.Header.Get("Authorization") != key || string(body) != `{"c":[{"n":1}]}` || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		s := statuses[min(int(n.Add(1))-1, len(statuses)-1)]
		w.WriteHeader(s)
		if s == http.StatusOK {
			fmt.Fprint(w, `{"c":[{"success":true}]}`)
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := client(t, srv, true)
	c.UseHTTP1(2)
	for range 2 {
		answer, err := c.PostEvents(context.Background(), []byte(`{"c":[{"n":1}]}`), 1)
		if err != nil || string(answer) != `{"c":[{"success":true}]}` {
			t.Fatalf("answer %s, %v", answer, err)
		}
	}
	_, err := c.PostEvents(context.Background(), []byte(`{"c":[{"n":1}]}`), 1)
	if f := failure.As(err); f == nil || f.Kind != failure.Config || !strings.Contains(f.Message, "may not write events") {
		t.Fatalf("403: %v", err)
	}
	for _, p := range protos {
		if p != "HTTP/1.1" {
			t.Fatalf("protocols %v", protos)
		}
	}
	if conns[0] != conns[len(conns)-1] {
		t.Fatalf("a new connection per request: %v", conns)
	}
}
