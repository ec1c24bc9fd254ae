"""Relief programmes, their eligibility rules and the entitlements they create."""
