#!/usr/bin/env bash
# Validates deploy/ without a cluster: the SpinKube manifests against their vendored JSON schemas
# (the SpinApp CRD included), their consistency with spin.toml, the runtime-config TOML, and a
# self-test that broken variants are rejected. See deploy/README.md, "Validating".
#
#   bash deploy/check.sh
#
# The checker runs in its own virtualenv, ${CARGO_TARGET_DIR:-target}/deploy-venv, with the pinned
# packages of deploy/requirements.txt, so the system Python stays untouched and CI gets the same
# versions. The venv is rebuilt only when requirements.txt changes. Needs python3 >= 3.11 (tomllib)
# and PyPI (or a mirror pip is configured for) on the first run. Exit status non-zero on any failure.
set -euo pipefail

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$deploy_dir")
target=${CARGO_TARGET_DIR:-$root/target}
# A relative CARGO_TARGET_DIR is relative to the workspace root, as for cargo.
case $target in /*) ;; *) target=$root/$target ;; esac
venv=$target/deploy-venv
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "deploy: needs $python >= 3.11 (tomllib); set PYTHON=/path/to/python3.11+" >&2
    exit 1
fi

# The stamp holds the requirements the venv was built from: a change in the pins rebuilds it,
# and a half-built venv (interrupted pip) has no stamp, so it is rebuilt too.
stamp=$venv/.requirements.txt
if ! cmp -s "$deploy_dir/requirements.txt" "$stamp" 2>/dev/null; then
    echo "deploy: installing the checker's packages into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$target"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-virtualenv -r "$deploy_dir/requirements.txt"
    cp "$deploy_dir/requirements.txt" "$stamp"
fi

exec "$venv/bin/python" "$deploy_dir/check_manifests.py" "$@"
