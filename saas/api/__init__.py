"""The REST API for agencies (/api/v1): scoped API keys, an OpenAPI 3.1 document, problem details."""
