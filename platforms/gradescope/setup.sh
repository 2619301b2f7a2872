#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image
# (Ubuntu by default), in /autograder/source where the zip was unpacked.
# It installs what a submission's build needs and checks that the zip's
# sockgrade runs here and accepts the zip's spec, so that a broken zip fails
# now, at upload, rather than on every student's submission.
#
# AUTOGRADER_ROOT (default /autograder) exists for the tests, which play
# Gradescope in a temporary directory.
set -euo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
source="$root/source"

# make and a C compiler build the submissions; nothing else is needed
# (sockgrade reads readiness from /proc, not from tools).
if ! command -v make >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq gcc make >/dev/null
fi

chmod +x "$source/sockgrade" "$source/run_autograder"
if ! "$source/sockgrade" --version; then
  echo "setup.sh: the zip's sockgrade does not run on this image ($(ldd --version 2>&1 | head -n 1));" >&2
  echo "it needs an x86_64 Linux with the glibc of the system it was built on (2.34 for Debian 12):" >&2
  echo "build it on an older system or for musl, then make the zip again" >&2
  exit 1
fi
"$source/sockgrade" check "$source/spec.yaml"
