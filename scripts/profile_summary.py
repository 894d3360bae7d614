#!/usr/bin/env python3
"""Summarise a py-spy raw profile (`py-spy record -f raw -o FILE -p PID`): top self and inclusive frames.

    py-spy record -p $(cat testnet-home/node1/node.pid) -d 10 -f raw -o /tmp/node1.txt
    python scripts/profile_summary.py /tmp/node1.txt
"""

from __future__ import annotations

import sys
from collections import Counter


def summarise(path: str, top: int = 15) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as fh:
        for line in fh:
            stack, _, count = line.strip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = stack.split(";")
            own[frames[-1]] += n
            for name in {f.split(" (")[0] for f in frames}:
                inclusive[name] += n
    out = [f"{path}: {total} samples", "self:"]
    out += [f"  {v / total * 100:5.1f}%  {k}" for k, v in own.most_common(top)]
    out.append("inclusive:")
    out += [f"  {v / total * 100:5.1f}%  {k}" for k, v in inclusive.most_common(top * 3)]
    return "\n".join(out)


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(summarise(p))
