"""HTTP handlers. They reach the database only through the `Store` (via domain objects like `Notes`)."""
