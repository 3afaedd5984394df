package inference

import "github.com/algocloud/algocloud/inference/inferapi"

// Config is the server's configuration; it is package inferapi's, which the
// platform writes it with without linking the server.
type Config = inferapi.Config

// Duration is a time.Duration that reads and writes as "30s" (inferapi's).
type Duration = inferapi.Duration
