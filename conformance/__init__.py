"""A conformance suite for the OCI Distribution Specification v1.1.

Run it with ``python -m conformance --url http://127.0.0.1:5000``. It exercises the four workflow
categories the specification defines (pull, push, content discovery, content management), one
check per requirement a client can observe, and exits non-zero if any check fails.
"""
