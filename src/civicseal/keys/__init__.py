"""The city's keys, contractors' recipients and the key service."""
