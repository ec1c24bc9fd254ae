"""Database engine, sessions, migrations and field encryption: the one place that knows SQL dialects."""
