package emulator

import (
	"net"
	"sync"
	"time"
)

// A link delay: every byte the brokers send leaves d after the broker wrote
// it, so each request/response round trip (TLS handshake and SASL included)
// costs d more, as across the internet. What the clients send is not held:
// one delay per round trip is enough, and a request that arrives at once
// keeps the brokers' own timing honest. The link's bandwidth is not limited.

// delayedListener wraps the brokers' listeners (kfake's ListenFn) so that
// every connection they accept writes through a delay line.
type delayedListener struct {
	net.Listener
	d time.Duration
}

func listenDelayed(d time.Duration) func(network, address string) (net.Listener, error) {
	return func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		return &delayedListener{ln, d}, nil
	}
}

func (l *delayedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	dc := &delayedConn{Conn: c, d: l.d, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go dc.deliver()
	return dc, nil
}

// delayedConn queues what is written and a goroutine writes each chunk
// once its time has come, in order. Close lets what is queued leave first,
// as a kernel does with a socket's send buffer.
type delayedConn struct {
	net.Conn
	d    time.Duration
	wake chan struct{}
	done chan struct{} // closed when deliver has returned

	mu      sync.Mutex
	queue   []chunk
	closing bool
	failed  error // the first write error; later writes return it
}

type chunk struct {
	due  time.Time
	data []byte
}

func (c *delayedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.failed != nil || c.closing {
		err := c.failed
		c.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return 0, err
	}
	c.queue = append(c.queue, chunk{time.Now().Add(c.d), append([]byte(nil), b...)})
	c.mu.Unlock()
	c.signal()
	return len(b), nil
}

func (c *delayedConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// deliver writes the queued chunks when due, and closes the connection
// once it is closing and the queue is empty.
func (c *delayedConn) deliver() {
	defer close(c.done)
	defer c.Conn.Close()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			closing := c.closing
			c.mu.Unlock()
			if closing {
				return
			}
			<-c.wake
			continue
		}
		next := c.queue[0]
		c.mu.Unlock()
		if wait := time.Until(next.due); wait > 0 {
			timer.Reset(wait)
			<-timer.C
		}
		_, err := c.Conn.Write(next.data)
		c.mu.Lock()
		c.queue[0] = chunk{}
		c.queue = c.queue[1:]
		if err != nil && c.failed == nil {
			c.failed = err
			c.queue = nil
			c.closing = true
		}
		c.mu.Unlock()
	}
}

// Close lets the queued bytes leave, then closes the connection. Reads
// blocked meanwhile end then.
func (c *delayedConn) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.signal()
	return nil
}
