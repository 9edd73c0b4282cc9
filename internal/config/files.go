package config

import (
	"context"
	"errors"
	"io"
	"os"

	"destination-keen/internal/failure"
)

// Limits on the files the platform hands the connector: generous for what
// they hold (a config is under a kilobyte; the catalog of a source with
// thousands of wide streams is tens of megabytes), and a bound on the
// memory a path that never ends (/dev/zero, a FIFO fed forever) can take.
const (
	MaxConfigBytes  = 1 << 20  // 1 MiB
	MaxCatalogBytes = 64 << 20 // 64 MiB
)

// ReadFile reads the file at path, what it is named in messages ("config",
// "catalog"), up to limit bytes: a longer one is a config_error, and so is
// one that cannot be opened. The read ends when ctx does (a signal), with a
// transient_error; a read that blocks (a FIFO nobody writes to) is then
// left to end with the process.
func ReadFile(ctx context.Context, path, what string, limit int64) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, limit+1))
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		switch {
		case r.err != nil:
			return nil, failure.Configf(r.err, "Cannot read the %s file %s", what, path)
		case int64(len(r.b)) > limit:
			return nil, failure.Configf(errors.New("file too large"), "The %s file %s is over %d MiB, which no %s is: is it the right file?", what, path, limit>>20, what)
		}
		return r.b, nil
	case <-ctx.Done():
		return nil, failure.Transientf(context.Cause(ctx), "Stopped while reading the %s file %s", what, path)
	}
}
