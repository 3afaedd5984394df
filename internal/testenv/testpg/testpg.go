// Package testpg gives tests a real, throwaway PostgreSQL database.
//
// Start returns the DSN of a fresh, empty database that is dropped when the test
// ends. By default it runs a private PostgreSQL server from Debian's packages
// (binaries under /usr/lib/postgresql/*/bin; scripts/setup-test.sh installs them),
// listening on 127.0.0.1 only, with its data and Unix socket in a temporary
// folder. A package that wants one server for all its tests, instead of one per
// test, declares
//
//	func TestMain(m *testing.M) { testpg.Main(m) }
//
// Environment:
//   - ALGOCLOUD_TEST_POSTGRES=postgres://...: use that server instead of starting
//     one; each test still gets its own database (or, without CREATEDB rights, its
//     own schema).
//   - ALGOCLOUD_SKIP_POSTGRES=1: skip the tests that need PostgreSQL. Without it,
//     missing binaries fail the test, so a machine that cannot run them is noticed.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by Start.
const (
	EnvDSN  = "ALGOCLOUD_TEST_POSTGRES"
	EnvSkip = "ALGOCLOUD_SKIP_POSTGRES"
)

var (
	mainActive atomic.Bool
	sharedOnce sync.Once
	shared     *server
	sharedErr  error
	dbSeq      atomic.Int64
)

// Main runs the package's tests (m.Run) with one PostgreSQL server shared by all
// of them, started on first use, stops it, and exits with the tests' status. Call
// it from TestMain.
func Main(m *testing.M) {
	mainActive.Store(true)
	code := m.Run()
	if shared != nil {
		if err := shared.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testpg: %v\n", err)
		}
	}
	os.Exit(code)
}

// Start returns the DSN (postgres://...) of a new, empty database for this test
// and drops the database in t.Cleanup. Without Main it starts a server for this
// test alone and stops it in t.Cleanup. It fails the test when PostgreSQL cannot
// be run, or skips it when ALGOCLOUD_SKIP_POSTGRES=1. Safe for parallel tests.
func Start(t testing.TB) string {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("testpg: %s=1: skipping a test that needs PostgreSQL", EnvSkip)
	}
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return freshDatabase(t, dsn)
	}
	var srv *server
	if mainActive.Load() {
		sharedOnce.Do(func() { shared, sharedErr = startServer() })
		if sharedErr != nil {
			t.Fatalf("testpg: %v", sharedErr)
		}
		srv = shared
	} else {
		var err error
		if srv, err = startServer(); err != nil {
			t.Fatalf("testpg: %v", err)
		}
		t.Cleanup(func() {
			if err := srv.stop(); err != nil {
				t.Errorf("testpg: %v", err)
			}
		})
	}
	return freshDatabase(t, srv.adminDSN())
}

// freshDatabase creates a uniquely named database on the server adminDSN names and
// returns its DSN; when the role may not create databases, a schema that the DSN
// selects through search_path. Either is dropped in t.Cleanup.
func freshDatabase(t testing.TB, adminDSN string) string {
	t.Helper()
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// The DSN may hold a password: never print it.
		t.Fatalf("testpg: %s must be a postgres:// URL", EnvDSN)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := fmt.Sprintf("test_%d_%d_%s", os.Getpid(), dbSeq.Add(1), hex.EncodeToString(suffix[:]))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatalf("testpg: connect to server: %v", err)
	}
	defer admin.Close(ctx)

	drop := "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err == nil {
		u.Path = "/" + name
	} else if _, err2 := admin.Exec(ctx, "CREATE SCHEMA "+name); err2 == nil {
		drop = "DROP SCHEMA IF EXISTS " + name + " CASCADE"
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
	} else {
		t.Fatalf("testpg: create database %s: %v; create schema instead: %v", name, err, err2)
	}

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			t.Errorf("testpg: connect to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, drop); err != nil {
			t.Errorf("testpg: %s: %v", drop, err)
		}
	})
	return u.String()
}

// errNoBinaries says PostgreSQL is not installed where Start looks.
var errNoBinaries = errors.New("no PostgreSQL binaries under /usr/lib/postgresql/*/bin or on PATH: run scripts/setup-test.sh " +
	"(or set " + EnvDSN + " to a server, or " + EnvSkip + "=1 to skip these tests)")
