"""One module per use case; the CLI calls these and renders what they return."""
