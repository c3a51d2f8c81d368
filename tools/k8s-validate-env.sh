#!/usr/bin/env bash
# Makes sure the Kubernetes schema checker's Python environment exists, and prints its python3.
#
# tools/k8s-validate.py needs kubernetes-validate (it bundles the Kubernetes JSON schemas, so the
# check needs PyPI once and no cluster). It lives in a virtualenv under .build, so nothing is
# installed system-wide and `swift test` on a fresh clone needs no set-up of its own: the first run
# installs it (about 40 s with a cold pip cache), later runs find it. Used by .ci/run and by
# DeployKubernetesTests; concurrent callers wait for one another (flock).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build/k8s-validate
mkdir -p .build
exec 9>.build/k8s-validate.lock
flock 9
if ! "$venv/bin/python3" -c 'import kubernetes_validate' 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0' >&2
fi
echo "$(pwd)/$venv/bin/python3"
