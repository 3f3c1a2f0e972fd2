#!/usr/bin/env bash
# The project's test command (README "Quickstart", step 2; CI runs exactly this).
# Installs what a fresh machine lacks into .venv, then runs the tests, mypy --strict and ruff.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

.venv/bin/python -m pytest
.venv/bin/python -m mypy --strict flowkit
.venv/bin/python -m ruff check flowkit tests bench graphs examples
