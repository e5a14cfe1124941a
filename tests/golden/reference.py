#!/usr/bin/env python3
"""An independent reference for the DORA figures of cd-images (issue 14's golden data set).

Written from the rules in words (README.md's DORA section, the e2e tests' doc comments), not
from cd-core's code: a second implementation in another language, so that the e2e test
tests/e2e/tests/api/golden_reference.rs can compare the API's answers with figures it did not
compute itself. Python 3, standard library only.

Usage: reference.py LOG.json  ->  prints a JSON list, one entry per query of the log:
    {"path": ..., "route": ..., "summary": {...expected figures...}}

The log is what the test sent, in order:
    {"images": [{"body": <CD request>, "image_id": ..., "built_at": ...}, ...],   # build order
     "events": [{"type": "deployment", "body": <POST /deployments body>},
                {"type": "settings", "body": {"excluded_authors": [...]}},
                {"type": "query", "route": "lead-time" | "deployment-frequency" |
                          "change-failure-rate" | "rework-rate",
                 "params": {"start", "end", ["environment", "prod", "project_id", "app_id",
                            "unit"]}, "path": <the GET path sent>}, ...]}

The rules (one registry channel, all images on it):
- An image's commits: the listed ones plus the head (a listed head is one commit; a listed head
  without an author takes the image's committer).
- "Ran" in an app environment (project, app, environment): a deployment reported succeeded
  (whatever a later rollback marks it).
- unit=commit: a succeeded deployment of X to E carries nothing when an image built after X
  already ran in E; else the commits of every image built after B (the newest image older than X
  that ran in E; none: X alone) up to X. Each (E, sha) counts once, at its first carrying
  deployment; within one window the oldest image's entry of a sha wins.
- unit=deployment: the first succeeded deployment of an image to E: deployed_at - head time.
- Lead times only for deployments with a project; negative ones are clock skew (left out,
  counted); excluded authors' lead times leave every lead-time figure (skew count included).
- Rollback: a deployment without `kind` whose image X differs from the running one R (latest
  succeeded deployment in E) and ran in E before or was built before R: kind rework (an
  attempted rollback that fails is rework too: it was made because of the incident); when it
  succeeds, R's deployment is marked failed.
- Ranges are inclusive at both ends, on deployed_at.
- Median/p90: linear interpolation at rank q*(n-1) (0-based) of the sorted values, computed
  exactly (integer microseconds, rational interpolation) and rounded once to an f64 of minutes.
"""

import json
import re
import sys
from datetime import datetime, timezone
from fractions import Fraction

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROS_PER_MINUTE = 60_000_000


def micros(text):
    """RFC 3339 (any offset, `Z`) -> integer microseconds since the epoch (UTC)."""
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"no offset: {text}")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def author_name(author):
    """The name part of "Name <email>" (the whole text when there is no " <")."""
    if author is None:
        return None
    index = author.find(" <")
    return author if index < 0 else author[:index]


def glob_regex(pattern):
    """`*` any run, `?` any one character, everything else (`[` too) itself."""
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def excluded(author, patterns):
    name = author_name(author)
    if name is None:
        return False
    return any(p.fullmatch(name) for p in patterns)


class Image:
    def __init__(self, order, entry):
        body = entry["body"]
        self.order = order
        self.image_id = entry["image_id"]
        self.built_at = micros(entry["built_at"])
        self.head_sha = body["git_hash"]
        self.head_time = micros(body["git_hash_commit_timestamp"])
        self.committer = body.get("committer")
        # The image's commits, in list order, the head added when not listed.
        commits = []
        head_listed = False
        for c in body.get("commits") or []:
            author = c.get("author")
            if c["sha"] == self.head_sha:
                head_listed = True
                if author is None:
                    author = self.committer
            commits.append((c["sha"], micros(c["timestamp"]), author))
        if not head_listed:
            commits.append((self.head_sha, self.head_time, self.committer))
        self.commits = commits


class Deployment:
    def __init__(self, seq, body, image):
        self.seq = seq
        self.image = image
        self.project = body.get("project_id")
        self.app = body.get("app_id")
        self.environment = body["environment"]
        self.prod = body["prod"]
        self.env = (self.project, self.app, self.environment)
        self.at = micros(body["deployed_at"])
        self.reported_failed = body.get("status") == "failed"
        self.failed = self.reported_failed
        self.kind = body.get("kind", "planned")
        self.explicit_kind = "kind" in body
        # (duration in microseconds, author) of each lead time this deployment counts.
        self.commit_leads = []
        self.deployment_lead = None  # (duration, committer) or None


class World:
    def __init__(self, log):
        self.images = [Image(i, e) for i, e in enumerate(log["images"])]
        for a, b in zip(self.images, self.images[1:]):
            if b.built_at < a.built_at:
                raise ValueError("images must be built in order")
        self.by_id = {im.image_id: im for im in self.images}
        self.deployments = []
        self.patterns = []
        # Per app environment: succeeded deployments in order, counted shas, images counted.
        self.succeeded = {}
        self.counted_shas = {}
        self.counted_images = {}

    def deploy(self, body):
        image = self.by_id[body["image_id"]]
        d = Deployment(len(self.deployments), body, image)
        history = self.succeeded.setdefault(d.env, [])
        for earlier in history:
            if earlier.at > d.at:
                raise ValueError("deployments must be posted in deployed_at order per app env")
        running = history[-1] if history else None
        if running is not None and not d.explicit_kind and image is not running.image:
            ran_before = any(h.image is image for h in history)
            if ran_before or image.order < running.image.order:
                d.kind = "rework"
                if not d.reported_failed:
                    running.failed = True
        if not d.reported_failed:
            ran_orders = [h.image.order for h in history]  # deployed at or before this one
            self.carry(d, ran_orders)
            counted = self.counted_images.setdefault(d.env, set())
            if image.order not in counted:
                counted.add(image.order)
                d.deployment_lead = (d.at - image.head_time, image.committer)
            history.append(d)
        self.deployments.append(d)

    def carry(self, d, ran_orders):
        x = d.image.order
        if any(o > x for o in ran_orders):
            return  # a newer build already ran there: its history holds X's
        older = [o for o in ran_orders if o < x]
        first = (max(older) + 1) if older else x
        window = {}
        for im in self.images[first : x + 1]:  # oldest first: the oldest entry wins
            for sha, at, author in im.commits:
                window.setdefault(sha, (at, author))
        counted = self.counted_shas.setdefault(d.env, set())
        for sha, (at, author) in window.items():
            if sha in counted:
                continue
            counted.add(sha)
            d.commit_leads.append((d.at - at, author))

    def in_query(self, d, params):
        start, end = micros(params["start"]), micros(params["end"])
        if not (start <= d.at <= end):
            return False
        if "environment" in params and d.environment != params["environment"]:
            return False
        if "prod" in params and d.prod != (params["prod"] == "true"):
            return False
        if "project_id" in params and d.project != params["project_id"]:
            return False
        if "app_id" in params and d.app != params["app_id"]:
            return False
        return True

    def answer(self, route, params):
        chosen = [d for d in self.deployments if self.in_query(d, params)]
        if route == "deployment-frequency":
            return {"count": len(chosen)}
        if route == "change-failure-rate":
            failed = sum(1 for d in chosen if d.failed)
            return {"deployments": len(chosen), "failed": failed, "rate": rate(failed, len(chosen))}
        if route == "rework-rate":
            rework = sum(1 for d in chosen if d.kind == "rework")
            return {"deployments": len(chosen), "rework": rework, "rate": rate(rework, len(chosen))}
        if route == "lead-time":
            unit = params.get("unit", "commit")
            leads = []
            for d in chosen:
                if d.project is None:
                    continue
                if unit == "commit":
                    leads.extend(d.commit_leads)
                elif d.deployment_lead is not None:
                    leads.append(d.deployment_lead)
            leads = [lt for lt, author in leads if not excluded(author, self.patterns)]
            skew = sum(1 for lt in leads if lt < 0)
            values = sorted(lt for lt in leads if lt >= 0)
            return lead_summary(values, skew, unit)
        raise ValueError(f"unknown route {route}")


def rate(part, whole):
    return None if whole == 0 else part / whole


def minutes(value):
    """An exact number of microseconds (int or Fraction) -> the nearest f64 of minutes."""
    return float(Fraction(value) / MICROS_PER_MINUTE)


def quantile(values, q):
    """Linear interpolation at rank q*(n-1) of sorted integer values, exactly."""
    rank = q * (len(values) - 1)
    low = rank.numerator // rank.denominator
    frac = rank - low
    if frac == 0:
        return Fraction(values[low])
    return values[low] + (values[low + 1] - values[low]) * frac


def lead_summary(values, skew, unit):
    n = len(values)
    if n == 0:
        return {"count": 0, "median_mins": None, "p90_mins": None, "mean_mins": None,
                "min_mins": None, "max_mins": None, "clock_skew_excluded": skew, "unit": unit}
    return {
        "count": n,
        "median_mins": minutes(quantile(values, Fraction(1, 2))),
        "p90_mins": minutes(quantile(values, Fraction(9, 10))),
        "mean_mins": minutes(Fraction(sum(values), n)),
        "min_mins": minutes(values[0]),
        "max_mins": minutes(values[-1]),
        "clock_skew_excluded": skew,
        "unit": unit,
    }


def main(path):
    with open(path, encoding="utf-8") as f:
        log = json.load(f)
    world = World(log)
    out = []
    for event in log["events"]:
        kind = event["type"]
        if kind == "deployment":
            world.deploy(event["body"])
        elif kind == "settings":
            world.patterns = [glob_regex(p) for p in event["body"]["excluded_authors"]]
        elif kind == "query":
            out.append({"path": event["path"], "route": event["route"],
                        "summary": world.answer(event["route"], event["params"])})
        else:
            raise ValueError(f"unknown event {kind}")
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: reference.py LOG.json")
    main(sys.argv[1])
