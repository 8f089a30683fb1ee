#!/usr/bin/env bash
# make install's extras: a pkg-config file that builds and links a C program against libexpt,
# and man pages (expt.1, expt-<command>.1) for every command of `expt --help`, with every
# option that the command's --help lists.
. "$(dirname "$0")/lib.sh"
BUILD=${EXPT_BUILD_DIR:?EXPT_BUILD_DIR must point at the build directory}
prefix=$T/prefix

check "cmake --install into a scratch prefix" cmake --install "$BUILD" --prefix "$prefix"

# pkg-config: compile, link and run a program that logs a metric through libexpt.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
check "pkg-config knows expt" pkg-config --exists expt
equals "pkg-config version is the project's" "$(pkg-config --modversion expt)" \
	"$("$EXPT" version | head -n1 | awk '{print $2}')"
cat >prog.c <<'C'
#include <expt.h>
#include <stdio.h>

int main(void)
{
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;

	o.run_id = "pc-1";
	o.sinks = "jsonl";
	o.jsonl_path = "metrics.jsonl";
	o.output_dir = "out";
	if (expt_run_open(&run, &o, &e)) {
		fprintf(stderr, "open: %s\n", e.message);
		return 1;
	}
	expt_log_metric(run, "loss", 0.25, 3);
	return expt_run_finish(run, "succeeded", &e) ? 1 : 0;
}
C
# A library built with ASan (the suite's second pass) needs its users built with it too.
san=
ldd "$prefix/lib/libexpt.so" | grep -q libasan && san=-fsanitize=address,undefined
# shellcheck disable=SC2046 # pkg-config's output is meant to be split into words
check "a program builds with pkg-config --cflags --libs expt" \
	cc -Wall -Werror $san -o prog prog.c $(pkg-config --cflags --libs expt)
check "and runs against the installed libexpt" env LD_LIBRARY_PATH="$prefix/lib" ./prog
contains "it logged through libexpt" "$(cat metrics.jsonl 2>&1)" '"loss"'

# Man pages: one per command, rendered by man, each with every option of its --help.
cmds=$("$EXPT" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}')
[ -n "$cmds" ] && pass "expt --help lists commands" || fail "expt --help lists commands"
export MANPATH=$prefix/share/man MANWIDTH=200
page=$(man expt 2>&1)
contains "man expt" "$page" "expt <command>"
for c in $cmds; do
	page=$(man "expt-$c" 2>&1)
	warn=$(groff -man -Tutf8 -ww -z "$prefix/share/man/man1/expt-$c.1" 2>&1)
	equals "man expt-$c renders without warnings" "$warn" ""
	contains "man expt lists $c" "$(man expt 2>&1)" "$c"
	for opt in $("$EXPT" "$c" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z-]+' | grep -oE -- '--[a-z-]+'); do
		contains "man expt-$c has $opt" "$page" "$opt"
	done
done
finish
