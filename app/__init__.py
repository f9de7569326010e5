"""Tornado Fleet: one Tornado process of the fleet. Entry point: `python -m app --port N` (see app.server)."""
