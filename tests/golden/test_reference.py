#!/usr/bin/env python3
"""Checks of reference.py itself against figures worked out by hand (not by cd-core): the
history of tests/e2e/tests/api/commits.rs's doc comment. Run: python3 tests/golden/test_reference.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402


def sha(name):
    return (name.encode().hex() + "0" * 40)[:40]


def image(n, head, at, commits=None, committer=None):
    body = {"git_hash": sha(head), "git_hash_commit_timestamp": at}
    if committer:
        body["committer"] = committer
    if commits is not None:
        body["commits"] = commits
    return {"body": body, "image_id": f"I{n}", "built_at": f"2026-03-0{n}T00:00:00Z"}


def deploy(image_id, environment, at):
    return {"type": "deployment", "body": {
        "image_id": image_id, "project_id": "shop", "app_id": "web", "environment": environment,
        "prod": environment == "production", "deployed_at": at}}


def query(route, **params):
    params = {"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T23:59:59Z", **params}
    return {"type": "query", "route": route, "params": params, "path": route}


class CommitsHistory(unittest.TestCase):
    """commits.rs: I1..I4 built in order; D1..D7 on 03-01 (UTC)."""

    def setUp(self):
        c1 = {"sha": sha("c1"), "timestamp": "2026-03-01T07:00:00Z", "author": "ann <a@x>"}
        self.images = [
            image(1, "h1", "2026-03-01T08:00:00Z",
                  [c1, {"sha": sha("h1"), "timestamp": "2026-03-01T08:00:00Z"}]),
            image(2, "h2", "2026-03-01T15:30:00+05:30"),  # 10:00 UTC
            image(3, "h3", "2026-03-01T12:00:00Z",
                  [{"sha": sha("c3"), "timestamp": "2026-03-01T11:00:00Z",
                    "author": "renovate[bot] <r@x>"},
                   {"sha": sha("h3"), "timestamp": "2026-03-01T12:00:00Z"}]),
            image(4, "h4", "2026-03-01T13:00:00Z",
                  [c1, {"sha": sha("h4"), "timestamp": "2026-03-01T13:00:00Z"}]),
        ]
        self.deployments = [
            deploy("I1", "staging", "2026-03-01T09:00:00Z"),
            deploy("I3", "staging", "2026-03-01T13:00:00Z"),
            deploy("I3", "production", "2026-03-01T14:00:00Z"),
            deploy("I2", "production", "2026-03-01T11:00:00-04:00"),  # 15:00 UTC
            deploy("I4", "production", "2026-03-01T16:00:00Z"),
            deploy("I4", "staging", "2026-03-01T17:00:00Z"),
            deploy("I1", "staging", "2026-03-01T18:00:00Z"),
        ]

    def run_log(self, queries, settings=None):
        log = {"images": self.images, "events": list(self.deployments)}
        if settings is not None:
            log["events"].append({"type": "settings", "body": {"excluded_authors": settings}})
        log["events"].extend(queries)
        world = reference.World(log)
        out = []
        for event in log["events"]:
            if event["type"] == "deployment":
                world.deploy(event["body"])
            elif event["type"] == "settings":
                world.patterns = [reference.glob_regex(p) for p in settings]
            else:
                out.append(world.answer(event["route"], event["params"]))
        return out

    def test_per_commit(self):
        (all_, prod) = self.run_log([query("lead-time"), query("lead-time", environment="production")])
        # 60, 60, 120, 120, 120, 180, 180, 180, 240, 540
        self.assertEqual(all_["count"], 10)
        self.assertEqual(all_["median_mins"], 150.0)
        self.assertEqual(all_["p90_mins"], 270.0)  # rank 8.1: 240 + 0.1 * 300
        self.assertEqual((all_["min_mins"], all_["max_mins"]), (60.0, 540.0))
        self.assertEqual((prod["count"], prod["median_mins"]), (4, 180.0))

    def test_excluded_authors(self):
        (all_,) = self.run_log([query("lead-time")], settings=["renovate*"])
        self.assertEqual((all_["count"], all_["median_mins"]), (8, 150.0))

    def test_per_deployment(self):
        (all_,) = self.run_log([query("lead-time", unit="deployment")])
        # D1 60, D2 60, D3 120, D4 300, D5 180, D6 240
        self.assertEqual((all_["count"], all_["median_mins"]), (6, 150.0))

    def test_rollbacks(self):
        (cfr, rework, freq) = self.run_log(
            [query("change-failure-rate"), query("rework-rate"), query("deployment-frequency")])
        # D4 (I2 after I3 in production) and D7 (I1 after I4 in staging) are rollbacks:
        # rework, and D3, D6 marked failed.
        self.assertEqual((cfr["deployments"], cfr["failed"]), (7, 2))
        self.assertEqual((rework["rework"], rework["rate"]), (2, 2 / 7))
        self.assertEqual(freq["count"], 7)

    def test_inclusive_edges(self):
        (edges, inside) = self.run_log([
            query("deployment-frequency", start="2026-03-01T14:30:00+05:30",  # D1 09:00 UTC
                  end="2026-03-01T14:00:00-04:00"),  # D7 18:00 UTC
            query("deployment-frequency", start="2026-03-01T09:00:01Z",
                  end="2026-03-01T17:59:59Z")])
        self.assertEqual((edges["count"], inside["count"]), (7, 5))


class Globs(unittest.TestCase):
    def test_patterns(self):
        bots = [reference.glob_regex(p) for p in ["renovate*", "*[bot]"]]
        self.assertTrue(reference.excluded("dependabot[bot] <d@x>", bots))
        self.assertTrue(reference.excluded("renovate[bot]", bots))
        self.assertFalse(reference.excluded("abbot <a@x>", bots))  # `[` is itself
        self.assertFalse(reference.excluded(None, bots))
        self.assertTrue(reference.excluded("bob", [reference.glob_regex("b?b")]))


if __name__ == "__main__":
    unittest.main()
