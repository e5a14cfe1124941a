"""schemathesis hooks of tests/contract/run.sh (loaded through SCHEMATHESIS_HOOKS).

The body overrides of schemathesis.toml (`body.image_id`) apply to generated bodies only: the
examples and coverage phases send the spec's request examples as they are, and the example
image id of POST /deployments would always be 404. This puts the seeded image's id
(CD_CONTRACT_IMAGE_ID, from seed.py) into that example before the spec is loaded, so those
phases reach the recording (201) and idempotent-retry (200) answers too.
"""

import os

import schemathesis


@schemathesis.hook
def before_load_schema(context, raw_schema):
    image_id = os.environ.get("CD_CONTRACT_IMAGE_ID")
    if not image_id:
        return
    operation = raw_schema.get("paths", {}).get("/deployments", {}).get("post", {})
    media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if isinstance(media.get("example"), dict):
        media["example"]["image_id"] = image_id
    for example in media.get("examples", {}).values():
        if isinstance(example, dict) and isinstance(example.get("value"), dict):
            example["value"]["image_id"] = image_id
