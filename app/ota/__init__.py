"""Over-the-air updates: signed bundles, A/B release folders, health-gated commit and automatic rollback.

Layout on the box (see `app/ota/README.md`):
`<root>/releases/<version>/` (a venv, as deploy/install.sh makes it), the `<root>/current` and
`<root>/previous` symlinks, and the update state in `<state_dir>/state.json`.
"""
