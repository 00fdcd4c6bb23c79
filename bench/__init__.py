"""Side-by-side benchmarks of beakerd against the reference registry.

Run `python -m bench.registry_bench --help`.
"""
