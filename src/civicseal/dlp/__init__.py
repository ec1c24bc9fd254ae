"""Data-loss prevention: exact-data-match fingerprints of the register, and scanning files for resident data."""
