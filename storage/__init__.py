"""Persistence: content-addressed blobs, upload sessions and the metadata database."""
