"""Operations tooling for Tornado Fleet: configuration, supervisord and nginx control, seeding, rolling restarts.

Each module with a `main(argv)` is a program behind one of the thin wrappers in `scripts/`.
"""
