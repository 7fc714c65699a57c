package api

import _ "embed"

// OpenAPI is the OpenAPI 3 document of the API (openapi.yaml in this
// directory), served at GET /v1/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
