"""buildfs test fixture."""
