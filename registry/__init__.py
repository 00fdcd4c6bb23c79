"""The OCI Distribution API (Docker Registry HTTP API v2) over HTTP."""
