"""Dashboard and setup widgets, one module per area."""
