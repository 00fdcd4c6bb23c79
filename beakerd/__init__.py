"""beakerd: an OCI registry and Beaker's metadata store in one asyncio process."""
