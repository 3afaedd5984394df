// Package store keeps algocloud's metadata: users, their API tokens, algorithms and
// each algorithm's progress events. It is sqlx over SQLite (modernc.org/sqlite, no
// cgo) by default and over PostgreSQL (pgx) in production; one query text serves
// both dialects through sqlx's Rebind wherever the dialects agree.
//
// A Store is safe for concurrent use by many goroutines, and several processes may
// share one database: SQLite waits on its busy timeout, PostgreSQL serialises
// migrations with an advisory lock.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/jmoiron/sqlx"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors callers branch on with errors.Is. Returned errors wrap them with detail.
var (
	// ErrNotFound means there is no such row, or none the caller may see.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique name (user name, API name) or ID is taken.
	ErrConflict = errors.New("conflict")
	// ErrUnauthorized means the token presented is unknown or revoked.
	ErrUnauthorized = errors.New("unauthorized")
)

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// sqliteBusyTimeout is how long a SQLite write waits for another writer (in this
// process or another) before failing with SQLITE_BUSY.
const sqliteBusyTimeout = 10 * time.Second

// Store is the metadata store. Create it with Open; it is safe for concurrent use.
type Store struct {
	db      *sqlx.DB
	dialect dialect
	// now is the clock; tests replace it. It must return UTC truncated to
	// microseconds (what both databases keep), so returned values equal stored ones.
	now func() time.Time
	// prepared caches statements of hot write paths on SQLite (query ->
	// *sqlx.Stmt), see hotExec.
	prepared sync.Map
}

// Open connects to the database named by dsn and applies any pending migrations.
//
// Accepted DSNs:
//   - sqlite:///abs/path/algocloud.db: a SQLite file (its folder is created if
//     missing), in WAL mode with a busy timeout and foreign keys on. A relative
//     path (sqlite://algocloud.db) is relative to the working directory. Extra
//     query parameters are handed to modernc.org/sqlite after the store's own.
//   - sqlite://:memory:: a private in-memory database for tests. The Store holds
//     exactly one connection to it (every new connection would see a new, empty
//     database), so all operations are serialised; closing the Store discards it.
//   - postgres://... or postgresql://...: PostgreSQL through pgx, in any form pgx
//     accepts.
//
// Errors never repeat the DSN: it may hold a password.
func Open(ctx context.Context, dsn string) (*Store, error) {
	var (
		db  *sqlx.DB
		d   dialect
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		d = dialectSQLite
		var memory bool
		db, memory, err = openSQLite(strings.TrimPrefix(dsn, "sqlite://"))
		if err == nil && !memory {
			err = enableWAL(ctx, db)
		}
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		d = dialectPostgres
		db, err = sqlx.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(16)
			db.SetConnMaxIdleTime(5 * time.Minute)
		}
	default:
		return nil, errors.New("open store: unsupported DSN scheme (want sqlite:// or postgres://)")
	}
	if err != nil {
		if db != nil {
			_ = db.Close()
		}
		return nil, fmt.Errorf("open %s store: %w", d, err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to %s store: %w", d, err)
	}
	s := &Store{db: db, dialect: d, now: utcNow}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// openSQLite opens the database a sqlite:// DSN names (rest is what follows the
// scheme) and reports whether it is in memory.
func openSQLite(rest string) (*sqlx.DB, bool, error) {
	path, extra, _ := strings.Cut(rest, "?")
	if path == "" {
		return nil, false, errors.New("sqlite DSN names no file (want sqlite:///abs/path.db or sqlite://:memory:)")
	}
	memory := path == ":memory:"
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, false, fmt.Errorf("create folder for %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if !memory {
		// WAL itself is switched on once, by enableWAL: the switch needs an
		// exclusive lock and, when connections race for it, fails with
		// SQLITE_BUSY without waiting on busy_timeout.
		//
		// NORMAL is durable across application crashes in WAL mode; only an OS
		// crash can lose the last commits, which is the usual trade for WAL.
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	// Every transaction takes the write lock when it begins, so two writers queue
	// on busy_timeout instead of one failing with SQLITE_BUSY when it upgrades a
	// read lock.
	q.Set("_txlock", "immediate")
	driverDSN := path + "?" + q.Encode()
	if extra != "" {
		driverDSN += "&" + extra
	}
	db, err := sqlx.Open("sqlite", driverDSN)
	if err != nil {
		return nil, false, err
	}
	if memory {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	}
	return db, memory, nil
}

// enableWAL puts the database in WAL mode (a setting kept in the file), so readers
// and a writer no longer block each other. It retries SQLITE_BUSY, which another
// process opening the same new file at the same moment can cause.
func enableWAL(ctx context.Context, db *sqlx.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for {
		var mode string
		err := db.GetContext(ctx, &mode, `PRAGMA journal_mode=WAL`)
		if err == nil && strings.EqualFold(mode, "wal") {
			return nil
		}
		if err == nil {
			return fmt.Errorf("enable sqlite WAL: journal mode stayed %q", mode)
		}
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return fmt.Errorf("enable sqlite WAL: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("enable sqlite WAL: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close closes the database. For sqlite://:memory: it discards the data.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s store: %w", s.dialect, err)
	}
	return nil
}

// hotStmt returns the statement of query (already rebound), prepared once
// per Store on SQLite: the pure-Go SQLite spends as long parsing a short
// UPDATE as running it, and a batch records thousands of results a minute.
// It returns nil on PostgreSQL, whose driver sends a query with its
// arguments in one round trip: the caller runs the query directly. Call it
// before beginning the transaction that uses the statement (through
// hotExec): preparing takes a connection, and an in-memory database has
// only the one the transaction holds.
func (s *Store) hotStmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if s.dialect != dialectSQLite {
		return nil, nil
	}
	if st, ok := s.prepared.Load(query); ok {
		return st.(*sqlx.Stmt), nil
	}
	p, err := s.db.PreparexContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	st, loaded := s.prepared.LoadOrStore(query, p)
	if loaded {
		_ = p.Close() // another caller prepared it first
	}
	return st.(*sqlx.Stmt), nil
}

// hotExec runs st (from hotStmt; nil: query) with args in tx. On the
// connection st was prepared on it runs without parsing again; on another,
// database/sql prepares it there once and keeps it.
func hotExec(ctx context.Context, tx *sqlx.Tx, st *sqlx.Stmt, query string, args ...any) (sql.Result, error) {
	if st == nil {
		return tx.ExecContext(ctx, query, args...)
	}
	return tx.StmtxContext(ctx, st).ExecContext(ctx, args...)
}

// txExec runs st (a statement of tx's, from tx.StmtxContext; nil: query)
// with args in tx.
func txExec(ctx context.Context, tx *sqlx.Tx, st *sqlx.Stmt, query string, args ...any) (sql.Result, error) {
	if st == nil {
		return tx.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

// Ping checks that the database answers, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s store: %w", s.dialect, err)
	}
	return nil
}

// q rebinds a query written with ? placeholders for the store's dialect.
func (s *Store) q(query string) string { return s.db.Rebind(query) }

func utcNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// norm gives a caller-supplied time the form the databases keep.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
