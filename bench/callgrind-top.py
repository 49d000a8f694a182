"""The functions that cost most per request, from two callgrind profiles of one program.

    python3 bench/callgrind-top.py LOW.out HIGH.out REQUESTS [TOP]

Each function's self cost (every thread) at HIGH minus at LOW, over REQUESTS (the difference
of the two runs' request counts): what it spends per request, start-up cancelled out.
"""

import re
import subprocess
import sys

# `1,234 ( 0.12%)  file:function [object]`. A function's cost is the sum of its lines over
# every file: code inlined from elsewhere is listed under the file it came from.
LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.*?)(?:\s+\[[^\]]*\])?\s*$")


def functions(path):
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    costs, started = {}, False
    for text in out.splitlines():
        if not started:
            started = text.strip().endswith("file:function")
            continue
        if text.startswith("---"):
            continue
        m = LINE.match(text)
        if not m:
            if costs:
                break
            continue
        name = m.group(2).split(":", 1)[-1]
        costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def main():
    low_file, high_file, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 25
    low, high = functions(low_file), functions(high_file)
    per_request = {
        name: (high.get(name, 0) - low.get(name, 0)) / requests for name in set(low) | set(high)
    }
    total = sum(per_request.values())
    print(f"{'per request':>12} {'share':>6}  function")
    for name, cost in sorted(per_request.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{cost:12,.0f} {cost / total:6.1%}  {name[:160]}")


main()
