"""The contact centre: operators look up one household at a time instead of holding a copy of the register."""
