"""The HTTP edge: the contact centre's pages and JSON API beside the key service. Thin: parse, call, render."""
