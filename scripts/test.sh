#!/usr/bin/env bash
# Every test of the project: Rust unit tests, the release addon, the typings, the JS suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/napi ]; then
  # `npm ci` rejects this lock: npm records only this platform's optional packages of
  # @napi-rs/lzma (a dependency of the napi CLI). `npm install` honours the lock as it is.
  npm install --no-fund --no-audit
fi

# The MongoDB-wire server of the MongoStorage tests: SecantusDB (PyPI, GPL-2.0, a beta server)
# in a venv of its own under node_modules/.cache (ignored, never packed). Only ever run as a
# separate test process (__test__/mongo-harness.mjs); nothing of it is linked or shipped.
SECANTUS_PIN="SecantusDB==0.7.0b3"
SECANTUS_VENV=node_modules/.cache/secantus
if [ "$(cat "$SECANTUS_VENV/.pin" 2>/dev/null)" != "$SECANTUS_PIN" ] || [ ! -x "$SECANTUS_VENV/bin/secantusd-py" ]; then
  echo "== test server: $SECANTUS_PIN into $SECANTUS_VENV"
  rm -rf "$SECANTUS_VENV"
  mkdir -p "$(dirname "$SECANTUS_VENV")"
  python3 -m venv "$SECANTUS_VENV"
  "$SECANTUS_VENV/bin/pip" install --quiet --disable-pip-version-check "$SECANTUS_PIN"
  echo "$SECANTUS_PIN" > "$SECANTUS_VENV/.pin"
fi

echo "== cargo test"
cargo test --quiet 2>&1 | tee /tmp/oxlock-cargo-test.$$.log
if grep -q '^warning' /tmp/oxlock-cargo-test.$$.log; then
  echo "cargo test printed warnings (see above)"; exit 1
fi
rm -f /tmp/oxlock-cargo-test.$$.log

echo "== build the addon (release)"
if [ "${CI:-}" = "true" ]; then
  # CI tests the code, not the link-time optimisation that published binaries get: without
  # whole-program LTO the release build takes about half as long on a 2-core runner.
  export CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
fi
./node_modules/.bin/napi build --platform --release --js binding.js --dts binding.d.ts

echo "== typings: tsc --strict on the README examples"
./node_modules/.bin/tsc -p __test__

# What the build and install generate is committed: a fresh clone stays clean.
if git rev-parse --git-dir >/dev/null 2>&1; then
  dirty=$(git status --porcelain -- binding.js binding.d.ts package-lock.json)
  if [ -n "$dirty" ]; then
    echo "the build or npm install changed committed files (commit what they generate):"; echo "$dirty"; exit 1
  fi
fi

echo "== platform packages in step with the main one"
node scripts/sync-platforms.mjs --check

echo "== node --test"
node --test --test-concurrency=1 __test__/
