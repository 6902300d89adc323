"""Many connections at zero latency in fresh processes (issue 30, first item).

Each run is a new interpreter, as a user's is: openai's request threads look up `sys.modules["httpx"]`, and the
Langfuse SDK (which imports httpx) loads while the first requests are in flight. Before every SDK the request threads
touch was imported ahead of them, 4 of 15 such runs lost rows to `partially initialized module 'httpx'`.
"""

from __future__ import annotations

import pytest

RUNS, ROWS, CONNECTIONS = 10, 200, "16"


@pytest.mark.slow
def test_sixteen_connections_at_zero_latency_lose_no_row_in_ten_fresh_processes(bench):
    b = bench(ROWS)
    lost = {}
    for run in range(RUNS):
        server = b.serve()  # every reply at once
        result = b.run("--no-cache", "--max-connections", CONNECTIONS, "-q", "--tb=line", xdist=True)
        doc = b.metric() if (b.out / "toolcall_azure.json").exists() else {}
        counts = (result.ret, doc.get("n"), doc.get("errors"), doc.get("passed"), len(server.requests))
        if counts != (0, ROWS, 0, ROWS, ROWS):
            lost[run] = (counts, result.stdout.str()[-1500:])
        (b.out / "toolcall_azure.json").unlink(missing_ok=True)
    assert lost == {}
