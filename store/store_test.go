package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/testpg"
)

// One server for the package's PostgreSQL tests; each test gets its own database.
func TestMain(m *testing.M) { testpg.Main(m) }

// backends is the table every test in this package runs against.
var backends = []struct {
	name string
	dsn  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "algocloud.db") }},
	{"sqlite-memory", func(*testing.T) string { return "sqlite://:memory:" }},
	{"postgres", func(t *testing.T) string { return testpg.Start(t) }},
}

func forEachBackend(t *testing.T, f func(t *testing.T, dsn string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.dsn(t)) })
	}
}

func open(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// fixture opens a store with a user ("alice") in it.
func fixture(t *testing.T, dsn string) (*Store, User) {
	t.Helper()
	s := open(t, dsn)
	u, err := s.CreateUser(context.Background(), "alice")
	require.NoError(t, err)
	return s, u
}

func newAlgorithm(id, owner, apiName string) Algorithm {
	return Algorithm{ID: id, OwnerID: owner, Name: "Algorithm " + id, APIName: apiName, WorkflowID: "deployment-" + id}
}

func TestOpenRejectsUnknownSchemeWithoutEchoingIt(t *testing.T) {
	_, err := Open(context.Background(), "mysql://root:hunter2@db/x")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestMigrationsAreIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, u := fixture(t, dsn)
		want, err := loadMigrations(s.dialect)
		require.NoError(t, err)
		require.NotEmpty(t, want)

		again := s
		if dsn != "sqlite://:memory:" { // a second Open of :memory: is another database
			again = open(t, dsn)
		}
		require.NoError(t, again.migrate(ctx))

		var n int
		require.NoError(t, again.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM schema_migrations`))
		require.Equal(t, len(want), n)
		got, err := again.UserByName(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, u, got)
	})
}

func TestConcurrentOpenOfFreshDatabase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, dsn string) {
		if dsn == "sqlite://:memory:" {
			t.Skip("every Open of :memory: is its own database")
		}
		// Processes starting at once race to migrate; stores opened in parallel
		// take the same paths (separate connections, the same locks).
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				s, err := Open(context.Background(), dsn)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
	})
}
