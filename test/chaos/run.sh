#!/usr/bin/env bash
# npm run test:chaos: builds the images (deploy/images.sh), then runs the chaos suite. Without a Docker engine it
# prints one skip line and exits 0, unless PROVISIOND_CHAOS_REQUIRED is set (CI sets it: there Docker works,
# and a skipped suite must not pass).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! docker info >/dev/null 2>&1; then
  if [ -n "${PROVISIOND_CHAOS_REQUIRED:-}" ]; then
    echo "test:chaos: no Docker engine answers, and PROVISIOND_CHAOS_REQUIRED is set" >&2
    exit 1
  fi
  echo "test:chaos: SKIPPED: no Docker engine answers (start dockerd to run the chaos suite)"
  exit 0
fi
bash deploy/images.sh
# Ryuk (testcontainers' reaper) needs an image from a registry; the suite removes its own containers instead.
export TESTCONTAINERS_RYUK_DISABLED=true
# --test-force-exit: a scenario that timed out must not leave the runner waiting on its open handles.
exec node --import tsx --test --test-force-exit --test-concurrency=1 test/chaos/*.test.ts
