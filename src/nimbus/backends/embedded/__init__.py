"""The embedded backend: SQLite (WAL) files and blob files in one data directory."""
