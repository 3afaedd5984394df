package api

import (
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDoc describes every route of this package (OpenAPI 3.0). It is
// written by hand; TestOpenAPIMatchesRoutes fails when it and the router differ.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the API's OpenAPI 3.0 document (JSON). The caller must not
// modify it.
func OpenAPI() []byte { return openAPIDoc }

// openAPI serves the OpenAPI document.
func (s *server) openAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDoc)
}
