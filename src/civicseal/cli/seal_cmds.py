"""Commands of this area; each registers itself on the shared Typer app."""

from civicseal.cli.app import app  # noqa: F401
