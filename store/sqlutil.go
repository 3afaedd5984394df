package store

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// timeLayout is how timestamps are written: fixed width and UTC, so SQLite, which
// keeps them as TEXT, compares and orders them correctly as strings; PostgreSQL
// parses the same text into TIMESTAMPTZ. Microseconds are what PostgreSQL keeps.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// dbTime carries a timestamp to and from either database.
type dbTime time.Time

// Value implements driver.Valuer.
func (t dbTime) Value() (driver.Value, error) {
	return time.Time(t).UTC().Format(timeLayout), nil
}

// Scan implements sql.Scanner: PostgreSQL hands over time.Time, SQLite text.
func (t *dbTime) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*t = dbTime(v.UTC())
		return nil
	case string:
		return t.parse(v)
	case []byte:
		return t.parse(string(v))
	default:
		return fmt.Errorf("scan timestamp: unsupported type %T", src)
	}
}

func (t *dbTime) parse(s string) error {
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("scan timestamp %q: %w", s, err)
	}
	*t = dbTime(v.UTC())
	return nil
}

// ptr turns a nullable column into the *time.Time the API types use.
func (t *dbTime) ptr() *time.Time {
	if t == nil {
		return nil
	}
	v := time.Time(*t)
	return &v
}

type violation int

const (
	noViolation violation = iota
	uniqueViolation
	primaryKeyViolation
	foreignKeyViolation
)

// classify tells which constraint, if any, an insert or update broke. It reads the
// drivers' error codes (SQLite extended result codes, PostgreSQL SQLSTATE), never
// their messages.
func classify(err error) violation {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return primaryKeyViolation
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return uniqueViolation
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return foreignKeyViolation
		}
		return noViolation
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			if strings.HasSuffix(pe.ConstraintName, "_pkey") { // PostgreSQL's default primary key name
				return primaryKeyViolation
			}
			return uniqueViolation
		case "23503": // foreign_key_violation
			return foreignKeyViolation
		}
	}
	return noViolation
}
