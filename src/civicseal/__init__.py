"""civicseal: a relief programme run on the resident register, with every transfer of personal data sealed."""

__version__ = "0.1.0"
