# tests/report/lib.sh - shared by the shadow-report tests: a work dir with the fixtures
# (mx2.log.1 gzipped as logrotate leaves it), and got/want comparison that names the test.
# Sourced; needs SHADOW_REPORT (the binary) and FIXTURES (tests/report/fixtures).
set -eu
: "${SHADOW_REPORT:?set by tests/report/Makefile.am}"
: "${FIXTURES:?set by tests/report/Makefile.am}"
export TZ=UTC LC_ALL=C.UTF-8
command -v jq >/dev/null || { echo "jq is needed (apt-get install jq)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/report-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$FIXTURES"/mx1.log "$FIXTURES"/mx2.log "$FIXTURES"/mx2.log.1 "$work"/
gzip -n "$work/mx2.log.1"
cd "$work"
LOGS="--log mx1.log --log mx2.log.1.gz --log mx2.log"
failures=0

# records - every record line of the fixtures that is valid JSON of format version 1, as jq sees it
records() {
    for f in mx1.log "$FIXTURES/mx2.log.1" mx2.log; do
        jq -cR 'try fromjson catch null | select(type == "object" and .v == 1)' "$f"
    done
}

# damaged NAME FILE - "NAME:LINE" of each line of FILE that is not a format version 1 record
damaged() {
    awk '{ printf "%d\t%s\n", FNR, $0 }' "$2" | jq -R -r --arg f "$1" '
        index("\t") as $i | .[:$i] as $n | (.[$i + 1:] | try fromjson catch null)
        | select(type != "object" or .v != 1) | "\($f):\($n)"'
}

# check NAME GOT WANT - compare two strings, print a diff on mismatch
check() {
    if [ "$2" = "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1"
        diff -u --label want --label got <(printf '%s\n' "$3") <(printf '%s\n' "$2") || true
        failures=$((failures + 1))
    fi
}

# check_rc NAME WANT_RC CMD... - run CMD, compare its exit code (stdout and stderr kept in out, err)
check_rc() {
    name=$1 want=$2
    shift 2
    rc=0
    "$@" >out 2>err || rc=$?
    check "$name: exit code" "$rc" "$want"
}

# check_grep NAME PATTERN FILE - FILE must contain the fixed string PATTERN
check_grep() {
    if grep -qF -- "$2" "$3"; then
        echo "ok   $1"
    else
        echo "FAIL $1: no \"$2\" in:"
        sed 's/^/    /' "$3"
        failures=$((failures + 1))
    fi
}

# finish - exit 1 if any check failed
finish() {
    if [ "$failures" -gt 0 ]; then
        echo "$failures check(s) failed"
        exit 1
    fi
    echo "all checks passed"
}

# csv_cols N... - columns N (1-based) of the CSV on stdin after its header, space-separated,
# parsed as RFC 4180 by Python's csv module ("-" for an empty field)
csv_cols() {
    python3 -c '
import csv, sys
cols = [int(a) - 1 for a in sys.argv[1:]]
rows = list(csv.reader(sys.stdin, strict=True))
for r in rows[1:]:
    print(" ".join(r[c] or "-" for c in cols))' "$@"
}
