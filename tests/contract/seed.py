#!/usr/bin/env python3
"""Seeds a fresh cd-images instance for the contract run and prints shell assignments.

Usage: seed.py BASE_URL ADMIN_TOKEN  (BASE_URL like http://127.0.0.1:PORT/api/v1)

Creates, as the bootstrap admin and then as an org admin token of org "contract":
- CD_CONTRACT_TOKEN            an admin token of org "contract" (what schemathesis sends)
- CD_CONTRACT_DOOMED_TOKEN_ID  a second token, the target of DELETE /tokens/{token_id}
- CD_CONTRACT_REGISTRY_ID      a registry with channel "default" and one image
- CD_CONTRACT_IMAGE_ID         that image, listing three commits (`commits`: its head commit,
  one with an author, one without), so GET/PATCH of it answer a non-empty `commits` and the
  DORA queries count per-commit lead times with and without `author`
- CD_CONTRACT_DOOMED_REGISTRY_ID  a second registry, the target of DELETE /registries/{id}
- three deployments of that image in 2020 (commit 2020-01-01T10:00:00Z): one that counts for
  lead time (project "shop", app "checkout", production), one deployed before its commit
  (clock skew) and one without a project (a deployment, not a lead time), so the DORA queries
  of the contract run's range (2020, see openapi.yaml's start/end examples) have values,
  a summary and a series with something in them.
- CD_CONTRACT_LEAD_TIME_ID     the first of them (deployment_id CD_CONTRACT_DEPLOYMENT_ID)
- CD_CONTRACT_FAILURE_ID       a failure reported against it (which marks it failed), and
  fixed by a rework deployment of a second image ("build-2") to the same app environment,
  so the change failure rate, recovery time and rework rate of 2020 have figures too.
Only the standard library: it runs with any python3.
"""

import json
import shlex
import sys
import urllib.error
import urllib.request

ORG = "contract"


def call(base, token, method, path, body=None, expect=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    if status not in expect:
        sys.exit(f"seed: {method} {path} answered {status}: {text}")
    return json.loads(text) if text else None


def main():
    base, admin = sys.argv[1].rstrip("/"), sys.argv[2]
    token = call(base, admin, "POST", "/tokens",
                 {"org_id": ORG, "role": "admin", "name": "contract tests"})["token"]
    doomed_token = call(base, token, "POST", "/tokens",
                        {"role": "read", "name": "to be revoked"})["token_id"]
    registry = call(base, token, "POST", "/registries",
                    {"image_repository_name": "contract/service-api",
                     "container_registry_id": "ghcr", "public": True})["registry_id"]
    doomed_registry = call(base, token, "POST", "/registries",
                           {"image_repository_name": "contract/to-be-deleted",
                            "container_registry_id": "ghcr"})["registry_id"]
    call(base, token, "PUT", f"/registries/{registry}/channels/default")
    image = call(base, token, "POST", f"/registries/{registry}/images", {
        "channel": "default",
        "update_type": "patch",
        "tag_name": "build-1",
        "image_name": "ghcr.io/contract/service-api",
        "image_name_with_tag": "ghcr.io/contract/service-api:build-1",
        "status": "inactive",
        "tags": ["latest"],
        "git_hash": "3f786850e387550fdab836ed7e6dc881de23001b",
        "git_hash_commit_timestamp": "2020-01-01T10:00:00Z",
        "committer": "Ada Lovelace <ada@example.com>",
        "commits": [
            # The head commit, at git_hash_commit_timestamp (another time would be 422).
            {"sha": "3f786850e387550fdab836ed7e6dc881de23001b",
             "timestamp": "2020-01-01T10:00:00Z", "author": "Ada Lovelace <ada@example.com>"},
            {"sha": "1C9A2D3E4F5061728394A5B6C7D8E9F0A1B2C3D4",
             "timestamp": "2019-12-31T18:45:00+01:00", "author": "renovate[bot] <bot@renovateapp.com>"},
            {"sha": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391", "timestamp": "2019-12-30T09:15:00Z"},
        ],
        "run_id": "contract-seed-1",
        "image_ports": [{"port": 8080, "protocol": "tcp", "name": "http"}],
        "cluster_image_tags": [{"cluster_id": "eu-1", "tag": "default-0.0.1"}],
        "api_version_id": "v1",
    })
    if len(image["commits"]) != 3 or image["commits"][1]["sha"] != "1c9a2d3e4f5061728394a5b6c7d8e9f0a1b2c3d4":
        sys.exit(f"seed: the image's commits came back as {image['commits']}")
    image = image["image_id"]
    recorded = [
        call(base, token, "POST", "/deployments", {"image_id": image, **deployment}, expect=(201,))
        for deployment in (
            {"project_id": "shop", "app_id": "checkout", "environment": "production",
             "prod": True, "deployment_id": "contract-seed-1",
             "deployed_at": "2020-01-02T11:30:00+01:00"},
            {"project_id": "shop", "app_id": "skewed", "environment": "staging",
             "deployment_id": "contract-seed-2", "deployed_at": "2020-01-01T09:00:00Z"},
            {"app_id": "no-project", "environment": "dev", "deployed_at": "2020-03-01T00:00:00Z"},
        )
    ]
    deployment = recorded[0]
    failure = call(base, token, "POST", "/failures", {
        "failure_id": "contract-failure-1",
        "deployment_id": deployment["deployment_id"],
        "started_at": "2020-01-02T12:00:00Z",
        "title": "checkout answers 500",
        "severity": "SEV2",
    }, expect=(201,))["failure_id"]
    hotfix_image = call(base, token, "POST", f"/registries/{registry}/images", {
        "channel": "default",
        "update_type": "patch",
        "tag_name": "build-2",
        "image_name": "ghcr.io/contract/service-api",
        "image_name_with_tag": "ghcr.io/contract/service-api:build-2",
        "status": "inactive",
        "git_hash": "89e6c98d92887913cadf06b2adb97f26cde4849b",
        "git_hash_commit_timestamp": "2020-01-02T12:30:00Z",
        "run_id": "contract-seed-2",
        "api_version_id": "v1",
    })["image_id"]
    hotfix = call(base, token, "POST", "/deployments", {
        "image_id": hotfix_image, "project_id": "shop", "app_id": "checkout",
        "environment": "production", "prod": True, "deployment_id": "contract-seed-4",
        "started_at": "2020-01-02T13:20:00Z", "deployed_at": "2020-01-02T13:30:00Z",
        "kind": "rework", "fixes_failure_id": failure,
    }, expect=(201,))
    resolved = call(base, token, "GET", f"/failures/{failure}")
    if resolved["resolved_at"] is None or resolved["lead_time_id"] != deployment["lead_time_id"]:
        sys.exit(f"seed: the hotfix {hotfix['lead_time_id']} did not resolve {resolved}")
    values = {
        "CD_CONTRACT_TOKEN": token,
        "CD_CONTRACT_DOOMED_TOKEN_ID": doomed_token,
        "CD_CONTRACT_REGISTRY_ID": registry,
        "CD_CONTRACT_IMAGE_ID": image,
        "CD_CONTRACT_DOOMED_REGISTRY_ID": doomed_registry,
        "CD_CONTRACT_LEAD_TIME_ID": deployment["lead_time_id"],
        "CD_CONTRACT_DEPLOYMENT_ID": deployment["deployment_id"],
        "CD_CONTRACT_FAILURE_ID": failure,
    }
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
