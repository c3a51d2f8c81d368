#!/usr/bin/env bash
# Validates every topology in topologies/ (or the files given) with the geofabric binary.
# Usage: tools/validate-topologies.sh [FILE...]   (builds the tool first if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product geofabric >/dev/null
binary=$(swift build --show-bin-path)/geofabric
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(topologies/*.yaml)
status=0
for file in "${files[@]}"; do
  if "$binary" topology validate "$file" >/dev/null; then
    echo "ok      $file"
  else
    status=1
  fi
done
exit $status
