#!/usr/bin/env bash
# Command 2: install what is missing, then lint (ruff), type-check (mypy) and run every test, e2e
# included (real Asterisk + sipp). Extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
# The demo database gives the plan/option/reward names to render; tests seed their own copies.
.venv/bin/ivr db init >&2
.venv/bin/ivr prompts render --db-names --no-progress >&2

status=0
echo "== ruff check" >&2
.venv/bin/ruff check . || status=1
echo "== ruff format --check" >&2
# Python files only: ruff would also reformat the python examples inside Markdown docs.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z '*.py' | xargs -0 .venv/bin/ruff format --check || status=1
else
    .venv/bin/ruff format --check --exclude '*.md' . || status=1
fi
echo "== mypy" >&2
.venv/bin/mypy ivr || status=1
echo "== import contracts (the layer rule)" >&2
.venv/bin/lint-imports --no-cache || status=1

echo "== pytest" >&2
set +e
.venv/bin/pytest "$@"
code=$?
set -e
if [[ $code -eq 5 ]]; then
    # pytest's "no tests ran": a test command that runs nothing has failed, whatever filter caused it.
    echo "test: pytest ran no tests: failing" >&2
fi
((code == 0)) || status=$code
exit "$status"
