"""schemathesis hooks of tests/contract/run.sh (loaded through SCHEMATHESIS_HOOKS).

The body overrides of schemathesis.toml (`body.image_id`) apply to generated bodies only: the
examples and coverage phases send the spec's request examples as they are, and the example
ids would name nothing here (the image of POST /deployments would always be 404, the
deployment of POST /failures too). This puts the seeded rows' ids (from seed.py) into those
examples before the spec is loaded, so those phases reach the recording (201) and
idempotent-retry (200) answers too:

- POST /deployments: `image_id` becomes CD_CONTRACT_IMAGE_ID;
- POST /failures: `deployment_id`, where an example names one, becomes
  CD_CONTRACT_DEPLOYMENT_ID (the deployment the seeded failure is attributed to).
"""

import os

import schemathesis

# (path, method, body field, environment variable, only where an example has the field): a
# request example's field to set. A failure example naming its app environment must not get
# a deployment_id (both is 422).
SEEDED = [
    ("/deployments", "post", "image_id", "CD_CONTRACT_IMAGE_ID", False),
    ("/failures", "post", "deployment_id", "CD_CONTRACT_DEPLOYMENT_ID", True),
]


def request_examples(raw_schema, path, method):
    """The request body examples of an operation, as the dicts schemathesis sends."""
    operation = raw_schema.get("paths", {}).get(path, {}).get(method, {})
    media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if isinstance(media.get("example"), dict):
        yield media["example"]
    for example in media.get("examples", {}).values():
        if isinstance(example, dict) and isinstance(example.get("value"), dict):
            yield example["value"]


@schemathesis.hook
def before_load_schema(context, raw_schema):
    for path, method, field, variable, only_where_present in SEEDED:
        value = os.environ.get(variable)
        if not value:
            continue
        for example in request_examples(raw_schema, path, method):
            if field in example or not only_where_present:
                example[field] = value
