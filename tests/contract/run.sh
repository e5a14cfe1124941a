#!/usr/bin/env bash
# The API contract test: runs schemathesis against the app hosted by cd-host and checks every
# response of every operation in openapi.yaml against it. See tests/contract/README.md.
#
# Needs the wasm components built (cargo build --target wasm32-wasip2 --release -p cd-registry
# -p cd-images -p cd-lead-time); builds them if they are missing. Honours CARGO_TARGET_DIR.
# Exit status: 0 when every check passed, non-zero otherwise.
#
# Knobs (environment): CD_CONTRACT_VENV (the virtualenv, default ~/.cache/cd-images/venv),
# CD_CONTRACT_MAX_EXAMPLES (default 30), CD_CONTRACT_SEED (default 20260301),
# CD_CONTRACT_WORKERS (default 1), CD_CONTRACT_SPEC (default openapi.yaml), CD_CONTRACT_REPORT_DIR (default: a temporary directory,
# removed at the end). Extra arguments are passed on to `schemathesis run`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

venv="${CD_CONTRACT_VENV:-$HOME/.cache/cd-images/venv}"
max_examples="${CD_CONTRACT_MAX_EXAMPLES:-30}"
seed="${CD_CONTRACT_SEED:-20260301}"
workers="${CD_CONTRACT_WORKERS:-1}"
target="${CARGO_TARGET_DIR:-$root/target}"
spec="${CD_CONTRACT_SPEC:-$root/openapi.yaml}"

# --- 1. schemathesis, pinned, in its own virtualenv (reinstalled when requirements change).
stamp="$venv/.cd-contract-requirements"
if [ ! -x "$venv/bin/schemathesis" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi
echo "contract: $("$venv/bin/schemathesis" --version)"

# --- 2. the app: the built components under cd-host, on a free loopback port, fresh database.
wasm="$target/wasm32-wasip2/release"
if [ ! -f "$wasm/cd_registry.wasm" ] || [ ! -f "$wasm/cd_images.wasm" ] || [ ! -f "$wasm/cd_lead_time.wasm" ]; then
  cargo build --target wasm32-wasip2 --release -p cd-registry -p cd-images -p cd-lead-time
fi
cargo build -q -p cd-host --bin cd-host

work="$(mktemp -d "${TMPDIR:-/tmp}/cd-contract.XXXXXX")"
host_pid=""
cleanup() {
  if [ -n "$host_pid" ] && kill -0 "$host_pid" 2>/dev/null; then
    kill "$host_pid" 2>/dev/null || true
    wait "$host_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
admin_token="admin-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
origin="http://127.0.0.1:$port"
"$target/debug/cd-host" --manifest spin.toml --listen "127.0.0.1:$port" \
  --database "$work/db.sqlite" --variable "admin_token=$admin_token" \
  --variable "webhook_signing_key=contract-$(python3 -c 'import secrets; print(secrets.token_hex(24))')" \
  >"$work/host.log" 2>&1 &
host_pid=$!

for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "$origin/.well-known/spin/health" 2>/dev/null; then break; fi
  if ! kill -0 "$host_pid" 2>/dev/null; then
    echo "contract: cd-host exited early:" >&2; cat "$work/host.log" >&2; exit 1
  fi
  sleep 0.1
done
curl -fsS -o /dev/null "$origin/.well-known/spin/health" || { echo "contract: cd-host did not come up" >&2; cat "$work/host.log" >&2; exit 1; }

# --- 3. seed: an org admin token of org "contract", registries, a channel, an image.
eval "$(python3 "$here/seed.py" "$origin/api/v1" "$admin_token")"
export CD_CONTRACT_ADMIN_TOKEN="$admin_token"

# --- 4. schemathesis: positive and negative data, fixed examples per operation, fixed seed.
report_dir="${CD_CONTRACT_REPORT_DIR:-$work/report}"
status=0
SCHEMATHESIS_HOOKS="$here/hooks.py" \
"$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" run "$spec" \
  --url "$origin/api/v1" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --phases examples,coverage,fuzzing \
  --mode all \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --workers "$workers" \
  --generation-database none \
  --request-timeout 30 \
  --no-color \
  --report junit --report-dir "$report_dir" \
  "$@" || status=$?

# --- 5. a 5xx leaves its cause in the component log: show it.
if grep -q "internal error" "$work/host.log"; then
  echo "contract: internal errors logged by the components:" >&2
  grep "internal error" "$work/host.log" | sort | uniq -c | head -20 >&2
fi
exit "$status"
