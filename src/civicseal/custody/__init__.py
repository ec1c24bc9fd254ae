"""The chain of custody of every package or medium that leaves the city."""
