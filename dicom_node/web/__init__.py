"""HTTP API, web viewer and Prometheus metrics."""
