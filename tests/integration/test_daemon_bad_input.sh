#!/usr/bin/env bash
# test_daemon_bad_input.sh - every daemon meets bad input with one clear line and exit code 1
#
# For mw-balancer (required) and mw-pvm / mw-ins / mw-guard (when built): missing,
# unreadable and malformed config files, an unknown key, a wrong type, an
# out-of-range value, bad options and an unwritable runtime directory each give
# exit status 1 and exactly one stderr line naming the problem; nothing crashes
# or hangs. The good paths (--help, --version, --check-config) exit 0.
source "$(dirname "$0")/lib.sh"

mw_require_cmd timeout

daemons=(mw-balancer)
mw_need_bin mw-balancer >/dev/null
for d in mw-pvm mw-ins mw-guard; do
	[ -x "$(mw_bin "$d")" ] && daemons+=("$d")
done
mw_log "daemons under test: ${daemons[*]}"

out=$MW_TMP/out
err=$MW_TMP/err

# run NAME ARGS...: run the daemon bounded by a timeout; status in $rc.
run() {
	local bin
	bin=$(mw_bin "$1")
	shift
	rc=0
	env -u MW_CONFIG -u NOTIFY_SOCKET timeout -k 5 20 "$bin" "$@" >"$out" 2>"$err" || rc=$?
	[ "$rc" != 124 ] && [ "$rc" != 137 ] || mw_fail "$bin $* hung (killed by timeout)"
	[ "$rc" -lt 128 ] || mw_fail "$bin $* died with signal $((rc - 128)): $(cat "$err")"
}

# expect_one_error NAME WHAT 'FIXED STRING'... -- ARGS...
# Exit 1, exactly one stderr line, containing every fixed string.
expect_one_error() {
	local name=$1 what=$2 lines s
	shift 2
	local want=()
	while [ "$1" != -- ]; do
		want+=("$1")
		shift
	done
	shift
	run "$name" "$@"
	[ "$rc" = 1 ] || mw_fail "$name, $what: exit $rc, expected 1; stderr: $(cat "$err")"
	lines=$(wc -l <"$err")
	[ "$lines" = 1 ] || mw_fail "$name, $what: $lines stderr lines, expected 1:
$(cat "$err")"
	for s in "${want[@]}"; do
		grep -qF -- "$s" "$err" || mw_fail "$name, $what: stderr lacks '$s': $(cat "$err")"
	done
	grep -qF "$name: error: " "$err" || mw_fail "$name, $what: line does not name $name"
	mw_log "ok: $name, $what: $(cat "$err")"
}

# Config files, one problem each, the problem on a known line.
printf 'common:\n{\n\truntime_dir = ;\n};\n' >"$MW_TMP/malformed.conf"
printf '# a comment\npvm:\n{\n\tbogus_key = 1;\n};\n' >"$MW_TMP/unknown-key.conf"
printf 'ins:\n{\n\tid = "seven";\n};\n' >"$MW_TMP/wrong-type.conf"
printf 'pvm:\n{\n\tindex = 300;\n};\n' >"$MW_TMP/out-of-range.conf"
printf 'balancer:\n{\n\tpolicy = "random";\n};\n' >"$MW_TMP/bad-enum.conf"
printf 'mw:\n{\n};\n' >"$MW_TMP/unknown-section.conf"
touch "$MW_TMP/regular-file"
mw_write_config "$MW_TMP/rundir-under-file.conf"
sed -i "s|runtime_dir = \"[^\"]*\"|runtime_dir = \"$MW_TMP/regular-file/run\"|" \
	"$MW_TMP/rundir-under-file.conf"
grep -qF "$MW_TMP/regular-file/run" "$MW_TMP/rundir-under-file.conf" ||
	mw_fail "could not write the runtime-dir config"
printf 'pvm: { index = 300; bogus = 1; };\nins: { id = "x"; };\n' >"$MW_TMP/three-errors.conf"

for d in "${daemons[@]}"; do
	expect_one_error "$d" "missing config" \
		"$MW_TMP/nonexistent.conf: cannot read: No such file or directory" -- \
		-c "$MW_TMP/nonexistent.conf"
	# Root can read any file, so "unreadable" is a directory in the file's place.
	expect_one_error "$d" "unreadable config" "$MW_TMP: cannot read: Is a directory" -- \
		-c "$MW_TMP"
	expect_one_error "$d" "malformed config" "$MW_TMP/malformed.conf:3: syntax error" -- \
		-c "$MW_TMP/malformed.conf"
	expect_one_error "$d" "unknown key" "$MW_TMP/unknown-key.conf:4: pvm.bogus_key: unknown key" \
		-- -c "$MW_TMP/unknown-key.conf"
	expect_one_error "$d" "wrong type" \
		"$MW_TMP/wrong-type.conf:3: ins.id: expected an integer, got a string" -- \
		-c "$MW_TMP/wrong-type.conf"
	expect_one_error "$d" "out-of-range value" \
		"$MW_TMP/out-of-range.conf:3: pvm.index: 300 is out of range 0..255" -- \
		-c "$MW_TMP/out-of-range.conf"
	expect_one_error "$d" "bad enum value" "$MW_TMP/bad-enum.conf:3: balancer.policy:" \
		'"random" is not one of' -- -c "$MW_TMP/bad-enum.conf"
	expect_one_error "$d" "unknown section" "$MW_TMP/unknown-section.conf:1: mw: unknown section" \
		-- -c "$MW_TMP/unknown-section.conf"
	expect_one_error "$d" "unknown option" "unknown option '--frobnicate'" "--help" -- \
		--frobnicate
	expect_one_error "$d" "option without its argument" "option '-c' needs an argument" -- -c
	expect_one_error "$d" "bad --log-level" "invalid --log-level 'loud'" -- --log-level loud
	expect_one_error "$d" "stray argument" "unexpected argument 'extra'" -- \
		-c "$MW_SOURCE_DIR/conf/mwcomms.conf" extra
	expect_one_error "$d" "unwritable runtime directory" \
		"runtime directory $MW_TMP/regular-file/run: Not a directory" -- \
		-c "$MW_TMP/rundir-under-file.conf"

	# MW_CONFIG is honoured (and its problems reported) when there is no -c.
	rc=0
	MW_CONFIG=$MW_TMP/nonexistent.conf timeout 20 "$(mw_bin "$d")" --check-config \
		>"$out" 2>"$err" || rc=$?
	[ "$rc" = 1 ] && grep -qF "$MW_TMP/nonexistent.conf: cannot read" "$err" ||
		mw_fail "$d: MW_CONFIG not used (exit $rc): $(cat "$err")"

	# --check-config lists every problem, one per line, then exits 1.
	run "$d" --check-config -c "$MW_TMP/three-errors.conf"
	[ "$rc" = 1 ] || mw_fail "$d --check-config on a bad file: exit $rc"
	[ "$(wc -l <"$err")" = 3 ] || mw_fail "$d --check-config: expected 3 lines: $(cat "$err")"
	grep -qF "pvm.index: 300 is out of range" "$err" &&
		grep -qF "pvm.bogus: unknown key" "$err" &&
		grep -qF "ins.id: expected an integer" "$err" ||
		mw_fail "$d --check-config: missing a problem: $(cat "$err")"

	# The good paths.
	run "$d" --check-config -c "$MW_SOURCE_DIR/conf/mwcomms.conf"
	[ "$rc" = 0 ] || mw_fail "$d --check-config on the shipped conf: exit $rc: $(cat "$err")"
	grep -qxF "$d: configuration $MW_SOURCE_DIR/conf/mwcomms.conf is valid" "$out" ||
		mw_fail "$d --check-config: unexpected output: $(cat "$out")"

	run "$d" --help
	[ "$rc" = 0 ] || mw_fail "$d --help: exit $rc"
	grep -qF "Usage: $d " "$out" && grep -qF -- "--check-config" "$out" ||
		mw_fail "$d --help: unexpected output: $(cat "$out")"

	run "$d" --version
	[ "$rc" = 0 ] || mw_fail "$d --version: exit $rc"
	grep -qE "^$d mwcomms [0-9]+\.[0-9]+\.[0-9]+$" "$out" ||
		mw_fail "$d --version: unexpected output: $(cat "$out")"
	mw_log "ok: $d good paths"
done

# Xen asked for on a host without it (this machine): one clear line, exit 1, no wait.
if [ ! -e /dev/xen ] && [ -x "$(mw_bin mw-pvm)" ] && [ -x "$(mw_bin mw-ins)" ]; then
	mw_write_config "$MW_TMP/xen.conf" "pvm: { control_socket = \"$MW_RUNTIME_DIR/pvm.sock\";
	ins_socket = \"$MW_RUNTIME_DIR/pvm-ins.sock\"; xen_channel = true; };
ins: { channel = \"xen\"; };"
	run mw-pvm -c "$MW_TMP/xen.conf"
	[ "$rc" = 1 ] && grep -qF "mw-pvm: error: pvm.xen_channel: xen channel: cannot open /dev/xen/gntalloc" "$err" ||
		mw_fail "mw-pvm with pvm.xen_channel and no Xen: exit $rc: $(cat "$err")"
	[ ! -e "$MW_RUNTIME_DIR/pvm-ins.sock" ] || mw_fail "mw-pvm left its INS socket behind"
	run mw-ins -c "$MW_TMP/xen.conf"
	[ "$rc" = 1 ] && grep -qF "mw-ins: error: ins.channel xen: xenstore: cannot reach xenstored" "$err" ||
		mw_fail "mw-ins with ins.channel xen and no Xen: exit $rc: $(cat "$err")"
	mw_log "ok: Xen channel asked for without Xen"
fi
