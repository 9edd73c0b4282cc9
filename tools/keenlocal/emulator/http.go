package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// startHTTP serves Keen's API shape over TLS on a loopback port.
func (e *Emulator) startHTTP() error {
	listen := net.Listen
	if e.opts.Latency > 0 {
		listen = listenDelayed(e.opts.Latency)
	}
	l, err := listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(e.opts.HTTPPort)))
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	e.httpAddr = l.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3.0/projects/{project}/events", e.writer(e.handleEvents))
	mux.HandleFunc("DELETE /3.0/projects/{project}/events/{collection}", e.master(e.handleDelete))
	mux.HandleFunc("GET /3.0/projects/{project}/events", e.master(e.handleCollections))
	mux.HandleFunc("GET /3.0/projects/{project}/queries/extraction", e.master(e.handleExtraction))
	mux.HandleFunc("GET /emulator/rejected", e.handleRejected)
	mux.HandleFunc("GET /emulator/duplicates", e.handleDuplicates)
	e.http = &http.Server{
		Handler:           e.record(mux),
		TLSConfig:         e.ca.serverConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // clients that refuse our CA are expected
	}
	go func() { _ = e.http.ServeTLS(l, "", "") }()
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// record keeps a log of the calls answered.
func (e *Emulator) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		e.mu.Lock()
		e.requests = append(e.requests, Request{Method: r.Method, Path: r.URL.Path, Status: sw.status})
		e.mu.Unlock()
	})
}

// keenError writes an error as Keen does: {"message": ..., "error_code": ...}.
func keenError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg, "error_code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// master checks the project and that the key (Authorization header, or the
// api_key query parameter) is the master key.
func (e *Emulator) master(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p := r.PathValue("project"); p != e.opts.ProjectID {
			keenError(w, http.StatusNotFound, "ProjectNotFoundError", fmt.Sprintf("Project not found: '%s'.", p))
			return
		}
		key := r.Header.Get("Authorization")
		if key == "" {
			key = r.URL.Query().Get("api_key")
		}
		switch {
		case key == e.opts.APIKey:
			h(w, r)
		case e.opts.WriteKey != "" && key == e.opts.WriteKey:
			keenError(w, http.StatusForbidden, "InsufficientPermissionsError", "This operation requires the project's Master Key.")
		default:
			// Keen quotes the key it was given; so do we, so that clients
			// prove they keep response bodies out of their logs.
			keenError(w, http.StatusUnauthorized, "InvalidApiKeyError", fmt.Sprintf("Specified API Key is invalid. API Key: '%s'.", key))
		}
	}
}

// answer writes the fault's error status as Keen would, with Retry-After
// when the fault has one.
func (f httpFault) answer(w http.ResponseWriter) {
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	code := "InternalServerError"
	if f.status == http.StatusTooManyRequests {
		code = "TooManyRequestsError"
	}
	keenError(w, f.status, code, http.StatusText(f.status))
}

func (e *Emulator) handleDelete(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	var f *httpFault
	if len(e.deleteFlt) > 0 {
		f = &e.deleteFlt[0]
		e.deleteFlt = e.deleteFlt[1:]
	}
	e.mu.Unlock()
	if f != nil {
		f.answer(w)
		return
	}
	collection := r.PathValue("collection")
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	cols, err := e.Collections(ctx)
	if err != nil {
		keenError(w, http.StatusServiceUnavailable, "ServiceUnavailableError", err.Error())
		return
	}
	if _, known := cols[collection]; !known {
		// Keen knows a collection once it holds an event, and answers for
		// one it does not know as for any unknown resource.
		keenError(w, http.StatusNotFound, "ResourceNotFoundError", fmt.Sprintf("Resource not found: collection '%s'.", collection))
		return
	}
	var filters []Filter
	if q := r.URL.Query().Get("filters"); q != "" {
		d := json.NewDecoder(strings.NewReader(q))
		d.UseNumber()
		if err := d.Decode(&filters); err != nil {
			keenError(w, http.StatusBadRequest, "InvalidPropertyValueError", "filters must be a JSON array of filters.")
			return
		}
		for _, f := range filters {
			if !filterOperators[f.Operator] || f.PropertyName == "" {
				keenError(w, http.StatusBadRequest, "InvalidFilterError", fmt.Sprintf("Invalid filter: operator %q on property %q.", f.Operator, f.PropertyName))
				return
			}
		}
	}
	if err := e.DeleteEvents(ctx, collection, filters); err != nil {
		keenError(w, http.StatusServiceUnavailable, "ServiceUnavailableError", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (e *Emulator) handleCollections(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	cols, err := e.Collections(ctx)
	if err != nil {
		keenError(w, http.StatusServiceUnavailable, "ServiceUnavailableError", err.Error())
		return
	}
	type collection struct {
		Name  string `json:"name"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	}
	out := []collection{}
	for name, n := range cols {
		out = append(out, collection{Name: name, URL: "/3.0/projects/" + e.opts.ProjectID + "/events/" + name, Count: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) handleExtraction(w http.ResponseWriter, r *http.Request) {
	collection := r.URL.Query().Get("event_collection")
	if collection == "" {
		keenError(w, http.StatusBadRequest, "MissingRequiredPropertyError", "event_collection is required.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	evs, err := e.Events(ctx, collection)
	if err != nil {
		keenError(w, http.StatusServiceUnavailable, "ServiceUnavailableError", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": evs})
}

func (e *Emulator) handleRejected(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rej, err := e.Rejected(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		keenError(w, http.StatusServiceUnavailable, "ServiceUnavailableError", err.Error())
		return
	}
	if rej == nil {
		rej = []Rejection{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rejected": rej})
}

func (e *Emulator) handleDuplicates(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	dups, err := e.Duplicates(ctx)
	if err != nil {
		keenError(w, http.StatusServiceUnavailable, "ServiceUnavailableError", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"duplicates": dups})
}
