"""dblogpack: packages PostgreSQL and MongoDB log entries on request."""

__version__ = "0.1.0"
