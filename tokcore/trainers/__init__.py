"""Core's trainers (step logic for the shared loop)."""
