#!/usr/bin/env python3
"""Where a run's time went, from its record (`.mp-remote/runs/ID/run.json`).

    bench/critical_path.py RUN_JSON [--top N]

Per layer and step (steps of all hosts with the same id together): how many hosts ran it,
the slowest host's time, the median host's, and the host CPU it used (summed over hosts, from
the agent's getrusage: the agent and the programs it waited for). Then per layer the wall
time from its first start to its last end, and the critical path: the slowest host's own
step time, and its time between steps (SSH round trips, the control node's planning, and the
barriers where it waits for the other hosts). Not a test: it prints numbers.
"""

import json
import statistics
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = 12
    if "--top" in sys.argv:
        top = int(sys.argv[sys.argv.index("--top") + 1])
    run = json.load(open(sys.argv[1]))
    hosts = run["hosts"]
    print(f"run {run['id']} ({run['command']}): {run['duration_ms']} ms, {len(hosts)} hosts")

    steps = {}  # (layer, step) -> [(host, duration, cpu)]
    layers = {}  # layer -> [start, end]
    order = []
    for h in hosts:
        for s in h["steps"]:
            key = (s["layer"], s["step"])
            if key not in steps:
                order.append(key)
            steps.setdefault(key, []).append((h["name"], s["duration_ms"], s.get("cpu_ms")))
            span = layers.setdefault(s["layer"], [s["offset_ms"], 0])
            span[0] = min(span[0], s["offset_ms"])
            span[1] = max(span[1], s["offset_ms"] + s["duration_ms"])

    print()
    print(f"{'layer':8} {'step':42} {'hosts':>5} {'slowest ms':>11} {'median ms':>10} {'cpu ms':>8}")
    ranked = sorted(order, key=lambda k: -max(d for _, d, _ in steps[k]))
    for key in ranked[:top]:
        runs = steps[key]
        slowest = max(runs, key=lambda r: r[1])
        cpu = [c for _, _, c in runs if c is not None]
        print(
            f"{key[0]:8} {key[1][:42]:42} {len(runs):5} {slowest[1]:>8} {slowest[0]:>3}"
            f" {statistics.median(d for _, d, _ in runs):>9.0f}"
            f" {sum(cpu) if cpu else '-':>8}"
        )
    if len(ranked) > top:
        print(f"... {len(ranked) - top} more steps")

    print()
    print(f"{'layer':8} {'wall ms':>8} {'cpu ms':>8}")
    for layer, (start, end) in layers.items():
        cpu = sum(c or 0 for (l, _), runs in steps.items() if l == layer for _, _, c in runs)
        print(f"{layer:8} {end - start:>8} {cpu:>8}")

    # The critical path: the host that finished last, its steps and the gaps between them.
    def end_of(h):
        return max((s["offset_ms"] + s["duration_ms"] for s in h["steps"]), default=0)

    last = max(hosts, key=end_of)
    working = sum(s["duration_ms"] for s in last["steps"])
    print()
    print(
        f"critical path: {last['name']} ends at {end_of(last)} ms: {working} ms in its steps, "
        f"{end_of(last) - working} ms between them (round trips, planning, barriers)"
    )
    total_cpu = sum(s.get("cpu_ms") or 0 for h in hosts for s in h["steps"])
    print(f"host CPU of all steps: {total_cpu} ms")


if __name__ == "__main__":
    main()
