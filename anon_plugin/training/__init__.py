"""Training the project's own models (CLI commands; heavy imports inside them)."""
