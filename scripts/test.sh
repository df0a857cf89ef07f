#!/usr/bin/env bash
# Every test of the project: Rust unit tests, the release addon, the typings, the JS suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/napi ]; then
  # `npm ci` rejects this lock: npm records only this platform's optional packages of
  # @napi-rs/lzma (a dependency of the napi CLI). `npm install` honours the lock as it is.
  npm install --no-fund --no-audit
fi

echo "== cargo test"
cargo test --quiet

echo "== build the addon (release)"
./node_modules/.bin/napi build --platform --release --js binding.js --dts binding.d.ts

echo "== typings: tsc --strict on the README examples"
./node_modules/.bin/tsc -p __test__

echo "== node --test"
node --test --test-concurrency=1 __test__/
