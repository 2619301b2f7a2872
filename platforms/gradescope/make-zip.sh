#!/usr/bin/env bash
# Builds the zip to upload to Gradescope ("Configure Autograder") for a
# spec: setup.sh and run_autograder from this directory, the spec as
# spec.yaml and a sockgrade executable, all at the archive's root, with
# their executable bits.
#
#   platforms/gradescope/make-zip.sh SPEC OUT.zip [SOCKGRADE]
#
# SOCKGRADE defaults to target/dist/sockgrade (`cargo build --profile dist
# -p harness`: the release build stripped, about 10 MB). It must run on
# Gradescope's image (Ubuntu 22.04 by default: glibc 2.35; a build on Debian
# 12 needs 2.34); setup.sh checks that it does when Gradescope builds the
# image.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 SPEC OUT.zip [SOCKGRADE]" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
spec="$1" out="$2"
sockgrade="${3:-$here/../../target/dist/sockgrade}"
[ -f "$spec" ] || { echo "$0: no file $spec" >&2; exit 2; }
if [ ! -f "$sockgrade" ]; then
  echo "$0: no file $sockgrade: build it with \`cargo build --profile dist -p harness\`, or name an executable" >&2
  exit 2
fi
# A zip of a spec that does not load would fail every submission.
"$sockgrade" check "$spec" >&2

# Python's zipfile, because the `zip` program is not always installed;
# each entry is written with its mode so the scripts stay executable.
python3 - "$out" "$here/setup.sh" setup.sh "$here/run_autograder" run_autograder \
  "$spec" spec.yaml "$sockgrade" sockgrade <<'PY'
import stat, sys, zipfile
out, pairs = sys.argv[1], sys.argv[2:]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for src, name in zip(pairs[::2], pairs[1::2]):
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        mode = 0o644 if name == "spec.yaml" else 0o755
        info.external_attr = (stat.S_IFREG | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(src, "rb") as f:
            z.writestr(info, f.read())
PY
echo "$out: setup.sh, run_autograder, spec.yaml, sockgrade" >&2
