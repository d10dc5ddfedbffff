"""Benchmark the core loop through the real HTTP endpoint against the stand-in servers.

Measures: mentions → cards throughput, signed vote click latency (p50/p95) and
selection → public reply latency. Usage:

    .venv/bin/python bench/core_loop.py [--mentions 200] [--votes 200]
    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test .venv/bin/python bench/...

Figures go into docs/benchmarks.md; numbers depend on the machine, so compare runs on one machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text

from tests.scenario import card_for, cards, propose, vote
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import Stack


def database(tmp: str) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp}/bench.db"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mentions", type=int, default=200)
    parser.add_argument("--votes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack, FakeX() as x:
        voters = [f"U0B{n:04d}" for n in range(args.votes)]
        for user in ["U0ALICE", *voters]:
            slack.add_user(user, user.lower())
        stack = Stack(
            slack,
            x,
            database(tmp),
            overrides={
                "CARE_VOTES_TO_SELECT": str(args.votes + 1),
                "X_POLL_SECONDS": "0.2",
                # Measure crowdcare, not Slack's 1 message/s/channel pacing (200 cards in one
                # channel would take 200 s by design).
                "CARE_SLACK_CHANNEL_INTERVAL": "0.001",
            },
        )
        stack.start()
        try:
            started = time.perf_counter()
            for n in range(args.mentions):
                x.add_mention(f"@AcmeHelp bench question {n:05d}", author_handle=f"c{n % 50}")
            deadline = time.monotonic() + 300
            while len(cards(stack, "bench question")) < args.mentions:
                if time.monotonic() > deadline:
                    raise SystemExit("cards did not all arrive within 300 s")
                time.sleep(0.05)
            intake = time.perf_counter() - started

            card = card_for(stack, "bench question 00000")
            proposal = propose(stack, "U0ALICE", card, "Benchmark answer.")
            latencies = []
            for voter in voters:
                t0 = time.perf_counter()
                assert vote(stack, voter, proposal).status == 200
                latencies.append((time.perf_counter() - t0) * 1000)
        finally:
            stack.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    backend = "PostgreSQL" if os.environ.get("TEST_DATABASE_URL") else "SQLite"
    print(f"database: {backend}")
    rate = args.mentions / intake
    print(f"{args.mentions} mentions → cards: {intake:.2f} s ({rate:.0f} cards/s)")
    print(
        f"vote click (signed HTTP → ack): p50 {percentile(latencies, 50):.1f} ms, "
        f"p95 {percentile(latencies, 95):.1f} ms over {len(latencies)} clicks"
    )
    print(f"peak RSS of the whole process (app + stand-ins): {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
