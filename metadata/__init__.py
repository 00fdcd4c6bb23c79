"""Beaker's domain on top of the registry: accounts, tokens, orgs, workspaces, images, /api/v3."""
