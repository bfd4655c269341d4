"""The agent-framework compatibility matrix: `python -m compat` writes docs/compatibility.md."""
