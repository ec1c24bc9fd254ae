"""Contractors of the city and their approved subcontractor chains: who may hold which data, and who holds it now."""
