#!/usr/bin/env bash
# lint.sh - clang-tidy and cppcheck over every C file in compile_commands.json
#
#   tools/lint.sh                 configure build-lint/ and lint every file
#   tools/lint.sh -b DIR          use DIR's compile_commands.json (configured if missing)
#   tools/lint.sh FILE...         lint only these files (paths relative to the repo)
#   tools/lint.sh -l              list the enabled clang-tidy checks and exit
#
# Prints one line per finding (file:line:col: check: message); the full
# clang-tidy explanation of each (the analyzer's path notes) goes to
# DIR/lint.log.  Exits 1 when either tool reports anything, 2 when a tool is
# missing.  Runs clang-tidy on every core in parallel.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-lint
list_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	-b)
		mkdir -p "$2"
		build=$(cd "$2" && pwd)
		shift 2
		;;
	-l)
		list_only=1
		shift
		;;
	*) break ;;
	esac
done

for tool in clang-tidy cppcheck cmake python3; do
	command -v "$tool" >/dev/null || {
		echo "lint: $tool is not installed (apt-get install $tool)" >&2
		exit 2
	}
done

# The check set: what finds real bugs in C, without pure taste.  Each check that
# is turned off has its reason here; turn one back on only with the tree clean.
checks='-*'
#  bugprone-*: misuse of the language and of libc.  Off:
#   easily-swappable-parameters  any two adjacent ints; pure taste
#   narrowing-conversions        size_t <-> int/ssize_t at every syscall boundary;
#                                the compiler's -Wall already sees the real ones
#   reserved-identifier          flags the kernel-style __attribute__ helpers and
#                                _GNU_SOURCE; (also cert-dcl37-c, its alias)
#   assignment-in-if-condition   "if ((fd = open(...)) < 0)" is house style
#   suspicious-string-compare    "if (!strcmp(a, b))" is house style
#   implicit-widening-of-multiplication-result
#                                every hit is a product of bounded counts (ring
#                                slots, grant refs, test sizes) used as an offset;
#                                the fix is a cast that states nothing new
checks+=',bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-narrowing-conversions'
checks+=',-bugprone-reserved-identifier,-bugprone-assignment-in-if-condition'
checks+=',-bugprone-suspicious-string-compare'
checks+=',-bugprone-implicit-widening-of-multiplication-result'
#  cert-*-c: the CERT C rules clang-tidy knows (atoi/sscanf without error
#  checks, rand(), signal handler safety, float loop counters, ...).  Off:
#   err33-c   "check the return value of" printf, snprintf, close, fclose, ...
#             at hundreds of call sites where the result cannot be acted on
#   dcl37-c   alias of bugprone-reserved-identifier (above)
checks+=',cert-*-c,-cert-err33-c,-cert-dcl37-c'
#  clang-analyzer-*: path-sensitive: leaks, NULL and freed-memory use,
#  uninitialised reads, dead stores, insecure APIs.  Off:
#   DeprecatedOrUnsafeBufferHandling  "use memcpy_s": C11 Annex K, not in glibc
#   optin.performance.Padding         struct layout advice; layouts here are ABI
checks+=',clang-analyzer-*'
checks+=',-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling'
checks+=',-clang-analyzer-optin.performance.Padding'
#  performance-*, portability-*: the few that apply to C (double maths on
#  floats, SIMD intrinsics).  Off:
#   no-int-to-ptr  an int carried in a void * slot (pthread keys, thread
#                  arguments) on purpose; optimisation advice, never a bug here
checks+=',performance-*,-performance-no-int-to-ptr,portability-*'
#  and two readability checks that catch bugs, not style
checks+=',misc-redundant-expression,readability-misleading-indentation'
# calloc(n, sizeof(*buckets)) for an array of pointers is the right idiom, not
# a sizeof mistake.
tidy_config='{CheckOptions: [{key: bugprone-sizeof-expression.WarnOnSizeOfPointerToAggregate, value: false}]}'

if [ "$list_only" = 1 ]; then
	clang-tidy --checks="$checks" --config="$tidy_config" --list-checks -- 2>/dev/null |
		sed -n 's/^ \{4\}//p'
	exit 0
fi

if [ ! -f "$build/compile_commands.json" ]; then
	cmake -S "$root" -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
fi
db=$build/compile_commands.json

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

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$build/lint.log
: >"$log"
status=0

echo "== clang-tidy (${#files[@]} files, $(nproc) at a time)"
export build root checks tidy_config tmp
printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "$(nproc)" bash -c '
	out=$tmp/$(echo "$1" | tr / _).out
	clang-tidy -p "$build" --quiet --checks="$checks" --config="$tidy_config" \
		--warnings-as-errors="*" \
		--header-filter="^$root/(common|pvm|ins|balancer|netflow|shim|tools)/" \
		"$1" >"$out" 2>&1 || echo "$1" >"$out.failed"' _
for f in "$tmp"/*.out; do
	cat "$f" >>"$log"
done
if compgen -G "$tmp/*.failed" >/dev/null; then
	status=1
	# One line per finding, named by its first check (a finding under aliases,
	# e.g. [bugprone-signal-handler,cert-sig30-c,...], once); a header finding
	# reported from several files once.
	grep -h -E '^/.*:[0-9]+:[0-9]+: (error|warning): ' "$tmp"/*.out |
		sed -E 's/: (error|warning): (.*) \[([^],]*)(,[^]]*)?\]$/: \3: \2/' |
		sed "s|^$root/||" | sort -u -t: -k1,1 -k2,2n -k3,3n
	grep -h -E '^Error while processing|error: unable to|fatal error' "$tmp"/*.out || true
fi

echo "== cppcheck"
cc_args=(--quiet --error-exitcode=1 --inline-suppr --enable=warning,performance,portability
	--suppress=missingIncludeSystem --suppress=unmatchedSuppression
	--template='{file}:{line}: {id}: {message}' -j "$(nproc)")
# cppcheck's --file-filter is picky about relative paths, so give it a
# compilation database holding exactly the files to check, each once (a few
# sources are compiled into two targets).
python3 -c '
import json, os, sys
want = set(os.path.realpath(f) for f in sys.argv[3:])
seen, db = set(), []
for e in json.load(open(sys.argv[1])):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if f in want and f not in seen:
        seen.add(f)
        db.append(e)
json.dump(db, open(sys.argv[2], "w"))
print(len(db))' "$db" "$tmp/compile_commands.json" "${files[@]}" >"$tmp/count"
if [ "$(cat "$tmp/count")" != "${#files[@]}" ]; then
	echo "lint: only $(cat "$tmp/count") of ${#files[@]} files are in $db" >&2
	status=1
fi
cppcheck "${cc_args[@]}" --project="$tmp/compile_commands.json" 2>&1 | sed "s|^$root/||" |
	sort -t: -k1,1 -k2,2n || status=1

if [ "$status" = 0 ]; then
	echo "lint: clean"
else
	echo "lint: findings above (details: $log)" >&2
fi
exit "$status"
