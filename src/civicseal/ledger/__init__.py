"""What the city issued: packages and recipients, as rows every layer above reads."""
