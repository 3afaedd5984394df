package testenv

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFreePortCanBeListenedOn checks what callers rely on: the port is free
// once FreePort returns, on 127.0.0.1.
func TestFreePortCanBeListenedOn(t *testing.T) {
	port := FreePort(t)
	require.Positive(t, port)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	require.NoError(t, err)
	require.NoError(t, l.Close())
}
