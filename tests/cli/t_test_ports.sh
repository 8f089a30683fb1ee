#!/usr/bin/env bash
# The fixtures' port picking (tests/lib/harness.sh h_free_port): processes starting at the same
# time never get the same port, even when their random draws are identical; a claim whose
# claimer is gone and whose port nobody listens on is given up; h_release_ports drops only the
# claims of its own fixture directory.
. "$(dirname "$0")/lib.sh"
export EXPT_TEST_PORT_DIR="$T/expt-test-ports" # claims of this test only
cat > pick.sh <<SH
h_name=ports; h_dir=\$1
. "$SRC/tests/lib/harness.sh"
RANDOM=7 # every process draws the same ports: only the claims tell them apart
h_free_port
sleep \${2:-2} # the claimer stays alive, as a fixture's up does until its server listens
SH
for i in $(seq 12); do bash pick.sh "$T/fx$i" & done > picked
wait
equals "12 concurrent pickers, 12 ports" "$(sort -u picked | wc -l)" "12"
equals "12 claims" "$(ls "$T/expt-test-ports" | wc -l)" "12"
first=$(head -n 1 picked)
contains "a claim names its fixture" "$(cat "$T/expt-test-ports/$first/owner")" "$T/fx"
# All claimers have exited and nothing listens: the same draws reclaim a stale port.
again=$(bash pick.sh "$T/later" 0)
equals "a stale claim is taken over (claimer gone, port unused)" "$(grep -c "^$again\$" picked)" "1"
equals "by the new fixture" "$(sed -n 2p "$T/expt-test-ports/$again/owner")" "$T/later"
# A claim whose port is listened on is not stale, even with its claimer gone.
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$again)); s.listen(); time.sleep(20)" &
lpid=$!
for _ in $(seq 50); do [ -n "$(ss -Hltn "sport = :$again")" ] && break; sleep 0.1; done
next=$(bash pick.sh "$T/later2" 0)
[ "$next" != "$again" ] && pass "a port still listened on is not taken over" || fail "a port still listened on is not taken over" "$next"
kill "$lpid"
h_dir="$T/later2" bash -c ". '$SRC/tests/lib/harness.sh'; h_release_ports"
n=$(ls "$T/expt-test-ports" | wc -l)
h_dir="$T/later" bash -c ". '$SRC/tests/lib/harness.sh'; h_release_ports"
equals "release drops the claims of its fixture only" "$(ls "$T/expt-test-ports" | wc -l)" "$((n - 1))"
finish
