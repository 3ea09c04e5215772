#!/usr/bin/env bash
# Builds a standalone `dist/ferry` executable with the client's and server's permission flags
# baked in. `deno compile` downloads the Deno runtime (denort) once from the internet; on a machine
# that cannot reach it, this says so instead of printing a stack trace.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
log="$(mktemp)"
if deno compile --v8-flags=--max-semi-space-size=1,--expose-gc --allow-net --allow-read --allow-write --allow-env=FERRY_CODE \
  --allow-sys=networkInterfaces --output dist/ferry main.ts >"$log" 2>&1; then
  cat "$log"
  echo "Built dist/ferry ($(du -h dist/ferry | cut -f1)). Try: dist/ferry --help"
  rm -f "$log"
  exit 0
fi
if grep -qiE 'dns error|failed to lookup|error sending request|connection refused|network' "$log"; then
  echo "deno compile could not download the Deno runtime it embeds in the executable:" >&2
  echo "it needs internet access once (then it is cached in DENO_DIR). Run 'deno task compile'" >&2
  echo "on a machine with access, or run ferry with 'deno run' / 'deno task ferry' instead." >&2
else
  sed -n '1,20p' "$log" >&2
fi
rm -f "$log"
exit 1
