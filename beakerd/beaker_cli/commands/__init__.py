"""One module per command group: `beaker image ...`, `beaker account ...`, `beaker config ...`."""
