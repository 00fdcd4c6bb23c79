"""The `beaker` command: a client of Beaker's REST API v3 and of the local Docker engine."""

from beakerd.beaker_cli.cli import main

__all__ = ["main"]
