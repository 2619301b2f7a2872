#!/usr/bin/env bash
# PrairieLearn's external-grader entrypoint for a sockgrade lab. The grader
# host mounts /grade: the question's tests/ (with spec.yaml) in
# /grade/tests, the student's files in /grade/student, and reads
# /grade/results/results.json once this exits. The container has no network
# but loopback, IPv4 only (no ::1), and no CAP_SYS_ADMIN, so
# `--isolation auto` falls back to `none`; servers listen on 127.0.0.1.
#
# Settings (environment, e.g. in the image or info.json's entrypoint line):
#   SOCKGRADE                the executable (default: sockgrade on PATH, else
#                            /grade/serverFilesCourse/sockgrade/sockgrade)
#   SOCKGRADE_BUILD_FAILURE  ungradable (default: no attempt used) or zero
#   GRADE_ROOT               /grade, moved elsewhere by the tests
set -uo pipefail
root="${GRADE_ROOT:-/grade}"
results="$root/results/results.json"
mkdir -p "$root/results"

sockgrade="${SOCKGRADE:-$(command -v sockgrade || echo "$root/serverFilesCourse/sockgrade/sockgrade")}"

# stdout goes to the grading job's log, which instructors see.
"$sockgrade" run "$root/tests/spec.yaml" \
  --submission "$root/student" --isolation auto --verbose \
  --build-failure "${SOCKGRADE_BUILD_FAILURE:-ungradable}" \
  --output "prairielearn=$results"
status=$?

# sockgrade exits 0 once results.json is written. Without the file
# PrairieLearn only says the grading failed; say why, without using up the
# student's attempt.
if [ ! -s "$results" ]; then
  cat >"$results" <<JSON
{"gradable": false, "score": 0,
 "message": "The grader could not run (sockgrade exited $status). Your instructor can see why in the grading job's log.",
 "tests": []}
JSON
fi
# PrairieLearn discards the results of a grader that exits non-zero.
exit 0
