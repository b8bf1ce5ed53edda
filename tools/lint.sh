#!/usr/bin/env bash
# lint.sh - clang-tidy and cppcheck over every C file in compile_commands.json
#
#   tools/lint.sh                 configure build-lint/ and lint every file
#   tools/lint.sh -b DIR          use DIR's compile_commands.json (configured if missing)
#   tools/lint.sh FILE...         lint only these files (paths relative to the repo)
#
# Exits 1 when either tool reports anything, 2 when a tool is missing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-lint
if [ "${1:-}" = -b ]; then
	build=$(cd "$2" && pwd)
	shift 2
fi

for tool in clang-tidy cppcheck cmake; do
	command -v "$tool" >/dev/null || {
		echo "lint: $tool is not installed (apt-get install $tool)" >&2
		exit 2
	}
done
if [ ! -f "$build/compile_commands.json" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
fi
db=$build/compile_commands.json

# A small set that finds real bugs without style noise:
#  bugprone-*       misuse of the language and libc (minus pure taste)
#  clang-analyzer-* path-sensitive: leaks, NULL derefs, uninitialised reads
#                   (minus "use memcpy_s", which is not a C11 library we have,
#                   and struct padding advice)
#  cert-err34-c     atoi/sscanf used for numbers without error checking
#  misc-redundant-expression, readability-misleading-indentation
checks='-*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-narrowing-conversions'
checks+=',-bugprone-reserved-identifier,-bugprone-assignment-in-if-condition'
checks+=',-bugprone-suspicious-string-compare' # "if (!strcmp(a, b))" is house style
checks+=',clang-analyzer-*,-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling'
checks+=',-clang-analyzer-optin.performance.Padding'
checks+=',cert-err34-c,misc-redundant-expression,readability-misleading-indentation'

if [ $# -gt 0 ]; then
	files=()
	for f in "$@"; do
		files+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
	done
else
	mapfile -t files < <(python3 -c '
import json, sys
for e in json.load(open(sys.argv[1])):
    f = e["file"]
    if f.endswith(".c") and "/build" not in f[len(sys.argv[2]):]:
        print(f)' "$db" "$root" | sort -u)
fi

status=0
echo "== clang-tidy (${#files[@]} files)"
for f in "${files[@]}"; do
	out=$(clang-tidy -p "$build" --quiet --checks="$checks" --warnings-as-errors='*' \
		--header-filter="^$root/(common|pvm|ins|balancer|netflow|shim|tools)/" "$f" 2>&1) ||
		{
			status=1
			printf '%s\n' "$out" | grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated' |
				grep -v -E '^Error while processing|^Suppressed [0-9]+ warnings|^Use -header-filter'
		}
done

echo "== cppcheck"
cc_args=(--quiet --error-exitcode=1 --inline-suppr --enable=warning,performance,portability
	--suppress=missingIncludeSystem --suppress=unmatchedSuppression
	--template='{file}:{line}: {severity} ({id}): {message}' -j "$(nproc)")
# cppcheck's --file-filter is picky about relative paths, so give it a
# compilation database holding exactly the files to check.
tmpdb=$(mktemp -d)
trap 'rm -rf "$tmpdb"' EXIT
python3 -c '
import json, os, sys
want = set(os.path.realpath(f) for f in sys.argv[3:])
db = [e for e in json.load(open(sys.argv[1]))
      if os.path.realpath(os.path.join(e["directory"], e["file"])) in want]
json.dump(db, open(sys.argv[2], "w"))
print(len(db))' "$db" "$tmpdb/compile_commands.json" "${files[@]}" >"$tmpdb/count"
if [ "$(cat "$tmpdb/count")" != "${#files[@]}" ]; then
	echo "lint: only $(cat "$tmpdb/count") of ${#files[@]} files are in $db" >&2
	status=1
fi
cppcheck "${cc_args[@]}" --project="$tmpdb/compile_commands.json" 2>&1 || status=1

[ "$status" = 0 ] && echo "lint: clean" || echo "lint: findings above" >&2
exit "$status"
