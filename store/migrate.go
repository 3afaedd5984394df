package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// migrationFS holds one folder per dialect of files named NNNN_description.sql.
// A migration, once released, never changes: add a new file instead.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migrateLockKey is the PostgreSQL advisory lock that serialises migrations between
// processes starting at once (the ASCII of "algocmig").
const migrateLockKey int64 = 0x616c676f636d6967

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(d dialect) ([]migration, error) {
	dir := "migrations/" + d.String()
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read %s migrations: %w", d, err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		prefix, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(prefix)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must start with a positive number and _", dir, name)
		}
		if prev, dup := seen[version]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, name, version)
		}
		seen[version] = name
		body, err := fs.ReadFile(migrationFS, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, migration{version: version, name: name, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies the migrations not yet recorded in schema_migrations, each in its
// own transaction. Running it again is a no-op. Two processes may run it at once:
// on PostgreSQL an advisory lock serialises them; on SQLite each transaction takes
// the write lock when it begins (_txlock=immediate) and re-checks under it.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		return err
	}
	// One connection throughout: a PostgreSQL session lock belongs to a connection.
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s store: get connection: %w", s.dialect, err)
	}
	defer conn.Close()

	if s.dialect == dialectPostgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("migrate postgres store: take advisory lock: %w", err)
		}
		// Unlock even when ctx is done; should that fail, closing the connection
		// ends the session and with it the lock.
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrateLockKey) //nolint:errcheck
	}

	createTable := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`
	if s.dialect == dialectPostgres {
		createTable = strings.Replace(createTable, "applied_at TEXT", "applied_at TIMESTAMPTZ", 1)
	}
	if _, err := conn.ExecContext(ctx, createTable); err != nil {
		return fmt.Errorf("migrate %s store: create schema_migrations: %w", s.dialect, err)
	}
	for _, m := range ms {
		if err := s.apply(ctx, conn, m); err != nil {
			return fmt.Errorf("migrate %s store: %s: %w", s.dialect, m.name, err)
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, conn *sqlx.Conn, m migration) error {
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	var applied int
	if err := tx.GetContext(ctx, &applied, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version); err != nil {
		return fmt.Errorf("check applied: %w", err)
	}
	if applied > 0 {
		return nil
	}
	// Both drivers run a multi-statement text when it has no arguments (pgx then
	// uses the simple protocol).
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, dbTime(s.now())); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
