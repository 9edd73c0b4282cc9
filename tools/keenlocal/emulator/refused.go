package emulator

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// RefusingAddr is a loopback address where connections are refused until
// release is called: a port bound and never listened on. A port listened on
// and closed does not serve: go test runs packages side by side, and another
// package's emulator may take the port meanwhile and answer there.
func RefusingAddr() (addr string, release func(), err error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return "", nil, fmt.Errorf("socket: %w", err)
	}
	release = func() { _ = syscall.Close(fd) }
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		release()
		return "", nil, fmt.Errorf("bind: %w", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		release()
		return "", nil, fmt.Errorf("getsockname: %w", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)), release, nil
}

// TB is what RefusedFor needs of a test (testing.TB has it).
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// RefusedFor is a RefusingAddr held for the rest of the test.
func RefusedFor(t TB) string {
	t.Helper()
	addr, release, err := RefusingAddr()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return addr
}
