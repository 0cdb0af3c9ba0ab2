"""Benchmarks: ours against the peers, side by side in one command (not shipped in the wheel).

    python -m benchmarks.bench [--profile cpu]            # throughput, FLOP utilization, sampling speed
    python -m benchmarks.bench --quality-vs-time …        # quality against minutes of training
"""
