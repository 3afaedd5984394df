// Package deps pins modules that packages under construction will import, so that
// `go mod tidy` keeps them; delete once every one is imported for real.
package deps

import (
	_ "github.com/gin-gonic/gin"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/jmoiron/sqlx"
	_ "github.com/stretchr/testify/require"
	_ "go.temporal.io/sdk/client"
	_ "go.temporal.io/sdk/testsuite"
	_ "go.temporal.io/sdk/worker"
	_ "go.temporal.io/sdk/workflow"
	_ "modernc.org/sqlite"
)
