"""The hash-chained audit log every package writes to."""
