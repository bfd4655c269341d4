"""The benchmark suite: `python -m bench` (see bench/__main__.py); not part of the pass/fail test run.

Each module measures one figure of docs/benchmarks.md against the simulator on 127.0.0.1 and returns a
`common.Section`: rest_count (REST requests per job), handoff (result to returning call), throughput (a pool
of accounts at scale), dispatch (gateway events per second), memory (per job, and bounded RSS), coldstart
(spawn to `initialize` against a bare MCPServer).
"""
