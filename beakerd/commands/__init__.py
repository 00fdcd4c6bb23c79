"""The `beakerd` subcommands, one module each: `register()` adds its parser, `run()` does it."""
