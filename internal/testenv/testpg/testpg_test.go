package testpg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func TestStartGivesSeparateEmptyDatabases(t *testing.T) {
	ctx := context.Background()
	a, b := Start(t), Start(t)
	require.NotEqual(t, a, b)

	ca, err := pgx.Connect(ctx, a)
	require.NoError(t, err)
	defer ca.Close(ctx)
	_, err = ca.Exec(ctx, `CREATE TABLE only_in_a (x int)`)
	require.NoError(t, err)

	cb, err := pgx.Connect(ctx, b)
	require.NoError(t, err)
	defer cb.Close(ctx)
	var n int
	require.NoError(t, cb.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'`).Scan(&n))
	require.Zero(t, n)

	// Listening on loopback only.
	var addr string
	require.NoError(t, cb.QueryRow(ctx, `SHOW listen_addresses`).Scan(&addr))
	require.Equal(t, "127.0.0.1", addr)
}

// recordingTB stands in for a test to see how Start ends it.
type recordingTB struct {
	testing.TB
	msg     string
	skipped bool
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.msg, r.skipped = fmt.Sprintf(format, args...), true
	runtime.Goexit()
}

func TestMissingBinariesFailUnlessSkipped(t *testing.T) {
	// Keep the shared server out of it: this Start must look for binaries itself.
	mainActive.Store(false)
	defer mainActive.Store(true)
	saved := debianPostgres
	debianPostgres = filepath.Join(t.TempDir(), "*", "bin", "postgres")
	defer func() { debianPostgres = saved }()
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvDSN, "")

	run := func() *recordingTB {
		r := &recordingTB{TB: t}
		done := make(chan struct{})
		go func() { defer close(done); Start(r) }()
		<-done
		return r
	}

	t.Setenv(EnvSkip, "")
	r := run()
	require.False(t, r.skipped)
	require.Contains(t, r.msg, "scripts/setup-test.sh")

	t.Setenv(EnvSkip, "1")
	r = run()
	require.True(t, r.skipped)
}

func TestWithoutMainEachTestHasItsOwnServer(t *testing.T) {
	if os.Getenv(EnvDSN) != "" {
		t.Skipf("%s is set: no server is started", EnvDSN)
	}
	mainActive.Store(false)
	defer mainActive.Store(true)
	ctx := context.Background()
	var dsn string
	t.Run("own server", func(t *testing.T) {
		dsn = Start(t)
		conn, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		require.NoError(t, conn.Close(ctx))
	})
	_, err := pgx.Connect(ctx, dsn)
	require.Error(t, err, "the server stops when its test ends")
}
