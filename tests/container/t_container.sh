#!/usr/bin/env bash
# The container backend against a real engine (Podman's Docker API, tests/podman) and the test
# registry's python3 image: output and metrics, exit codes, OOM, stop, a missing image, the
# container's settings, cleanup, engine discovery and the container: section of the spec.
. "$(dirname "$0")/env.sh"
. "$(dirname "$0")/../cli/lib.sh"

SOCK=${DOCKER_HOST#unix://}
# engine PATH: GET from the engine (for checks only; expt never uses a CLI or curl).
engine() { curl -s --unix-socket "$SOCK" "http://d/v1.41$1"; }
# containers of this test's experiment still known to the engine
containers_of() {
	engine "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22expt.dev%2Fexperiment%3D$1%22%5D%7D" |
		json 'len(d)'
}

# A name of its own: the engine outlives the test, and container names are run ids.
N=ctr$$
cat > expt.yaml <<YAML
name: $N
image: $EXPT_TEST_PYTHON_IMAGE
backend: container
command: python3 job.py
args: none
params: {code: 0, mode: plain}
container:
  network: none
YAML
cat > job.py <<'PY'
import os, sys, time
mode = os.environ["EXPT_PARAM_MODE"]
if mode == "oom":
    print("allocating", flush=True)
    x = bytearray(200 * 1024 * 1024)
    for i in range(0, len(x), 4096):
        x[i] = 1
    print("survived", flush=True)
elif mode == "big":
    sys.stdout.write("x" * 3000000 + "\n")
    print("after big", flush=True)
    sys.exit(0)
elif mode == "files":
    print("abs:", open("/etc/expt-test/c.json").read().strip())
    print("rel:", open("cfg/c.json").read().strip())
    try:
        open("/etc/expt-test/c.json", "w").write("x")
        print("writable")
    except OSError:
        print("read-only")
    sys.exit(0)
elif mode == "sleep":
    print("sleeping", flush=True)
    time.sleep(300)
elif mode == "wait":
    print("waiting", flush=True)
    while not os.path.exists("release"):
        time.sleep(0.05)
    print("expt: acc=0.75", flush=True)
    print("released", flush=True)
    sys.exit(int(os.environ["EXPT_PARAM_CODE"]))
print("hello from the container", os.getuid(), os.getgid())
print("params:", open(os.environ["EXPT_PARAMS_FILE"]).read())
print("expt: loss=0.5")
print("to stderr", file=sys.stderr)
open(os.path.join(os.environ["EXPT_OUTPUT_DIR"], "result.txt"), "w").write("done\n")
sys.exit(int(os.environ["EXPT_PARAM_CODE"]))
PY

# A run: pulled from the registry, output in the run's logs, metrics in the store.
expect_code "a run in a container" 0 "$EXPT" run
contains "its output is shown live" "$out" "hello from the container"
contains "the engine's name for it" "$out" "started (container:"
expect_code "logs" 0 "$EXPT" logs $N-1
contains "stdout reaches logs" "$out" "hello from the container $(id -u) $(id -g)"
contains "stderr reaches logs" "$out" "to stderr"
contains "the params file is mounted" "$out" 'params: {"code":0,"mode":"plain"}'
expect_code "logs --stderr" 0 "$EXPT" logs $N-1 --stderr
equals "only stderr" "$out" "to stderr"
expect_code "ps" 0 "$EXPT" ps -o json
equals "succeeded with exit code 0" "$(echo "$out" | json '[(r["status"], r["exit_code"], r["backend"]) for r in d if r["id"]=="'"$N"'-1"][0]')" "('succeeded', 0, 'container')"
expect_code "show" 0 "$EXPT" show $N-1 -o json
equals "the printed metric reaches the store" "$(echo "$out" | json 'd["metrics"]["loss"]["last"]')" "0.5"
equals "the output directory is the run's, on the host" "$(cat .expt/runs/$N-1/output/result.txt 2>/dev/null)" "done"
equals "written as the invoking user" "$(stat -c %u:%g .expt/runs/$N-1/output/result.txt 2>/dev/null)" "$(id -u):$(id -g)"
equals "the container is removed once it ended" "$(containers_of $N)" "0"

# A failing run: its exit code.
expect_code "a failing run" 1 "$EXPT" run code=3
expect_code "ps" 0 "$EXPT" ps -o json
equals "failed with exit code 3" "$(echo "$out" | json '[(r["status"], r["exit_code"], r["reason"]) for r in d if r["id"]=="'"$N"'-2"][0]')" "('failed', 3, 'exit')"
expect_code "debug" 0 "$EXPT" debug $N-2
contains "debug says the code" "$out" "exited with code 3"
contains "with the last lines" "$out" "to stderr"

# Out of memory: a 32Mi container allocating 200 MB.
expect_code "a run past its memory limit" 1 "$EXPT" run mode=oom resources.memory=32Mi
not_contains "it did not survive" "$out" "survived"
expect_code "ps" 0 "$EXPT" ps -o json
equals "failed for lack of memory" "$(echo "$out" | json '[(r["status"], r["reason"]) for r in d if r["id"]=="'"$N"'-3"][0]')" "('failed', 'oom')"
expect_code "debug" 0 "$EXPT" debug $N-3
contains "debug says out of memory" "$out" "out of memory"
contains "with the limit" "$out" "32Mi"
# The experiment's failed runs by cause, from the container backend's diagnosis.
expect_code "debug the experiment" 0 "$EXPT" debug $N
contains "by cause: the exit code" "$out" "exited with code 3 — 1 run: $N-2"
contains "by cause: out of memory" "$out" "— 1 run: $N-3"
contains "the counts" "$out" "$N  3 runs · 2 failed (2 causes) · 1 succeeded"

# Stop: a running container is stopped, and then removed.
expect_code "a long run, detached" 0 "$EXPT" run -d mode=sleep
wait_status $N-4 running
wait_lines $N-4 sleeping 1
expect_code "stop" 0 "$EXPT" stop $N-4 --grace 1
wait_status $N-4 stopped
for ((i = 0; i < 100; i++)); do [ "$(containers_of $N)" = 0 ] && break; sleep 0.1; done
equals "its container is gone" "$(containers_of $N)" "0"

# A timeout: expt ends the container itself (SIGTERM, then SIGKILL after the grace period).
expect_code "a run past its timeout" 1 timeout 120 "$EXPT" run mode=sleep timeout=2s
expect_code "ps" 0 "$EXPT" ps -o json
equals "failed: timed out" "$(echo "$out" | json '[(r["status"], r["reason"]) for r in d if r["id"]=="'"$N"'-5"][0]')" "('failed', 'timeout')"

# What the container was given: labels, user, limits, mounts (kept, to be inspected).
expect_code "a kept container" 0 "$EXPT" run container.keep=true resources.memory=64Mi resources.cpu=0.5
cid=$(engine "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22expt.dev%2Frun%3D$N-6%22%5D%7D" | json 'd[0]["Id"]')
ins=$(engine "/containers/$cid/json")
equals "named after the run" "$(echo "$ins" | json 'd["Name"].lstrip("/")')" "$N-6"
equals "labelled with experiment and run" "$(echo "$ins" | json '(d["Config"]["Labels"]["expt.dev/experiment"], d["Config"]["Labels"]["expt.dev/run"])')" "('$N', '$N-6')"
equals "as the invoking user" "$(echo "$ins" | json 'd["Config"]["User"]')" "$(id -u):$(id -g)"
equals "the memory limit" "$(echo "$ins" | json 'd["HostConfig"]["Memory"]')" "67108864"
equals "the CPU limit" "$(echo "$ins" | json 'd["HostConfig"]["NanoCpus"]')" "500000000"
equals "the default ulimits" "$(echo "$ins" | json 'sorted((u["Name"].lower().replace("rlimit_", ""), u["Soft"], u["Hard"]) for u in d["HostConfig"]["Ulimits"])')" "[('nofile', 20000, 20000), ('nproc', 32768, 32768)]"
equals "no network" "$(echo "$ins" | json 'd["HostConfig"]["NetworkMode"]')" "none"
contains "the params file read-only" "$(echo "$ins" | json 'd["HostConfig"]["Binds"]')" "/logs/params.json:/expt/params.json:ro"
expect_code "rm removes a kept container too" 0 "$EXPT" rm $N-6
equals "the engine no longer has it" "$(containers_of $N)" "0"

# A missing image: the run fails at once, and debug says why.
expect_code "a missing image" 1 "$EXPT" run "image=$EXPT_TEST_REGISTRY/expt/nope:none"
expect_code "ps" 0 "$EXPT" ps -o json
equals "failed: could not start" "$(echo "$out" | json '[(r["status"], r["reason"]) for r in d if r["id"]=="'"$N"'-7"][0]')" "('failed', 'error')"
expect_code "debug" 0 "$EXPT" debug $N-7
contains "debug names the image" "$out" "expt/nope:none"
contains "and what to check" "$out" "check 'image' in the spec"

# A line of 3 MB (frames larger than any buffer): every byte reaches the log, in order.
expect_code "a very long line" 0 "$EXPT" run -q mode=big
equals "all of it in stdout.log" "$(wc -c <.expt/runs/$N-8/logs/stdout.log)" "3000011"
equals "then the next line" "$(tail -1 .expt/runs/$N-8/logs/stdout.log)" "after big"
expect_code "logs" 0 "$EXPT" logs $N-8
equals "in 64 KiB pieces and the rest" "$(echo "$out" | awk '{print length($0)}' | sort -n | uniq -c | awk '{print $1"x"$2}' | tr '\n' ' ')" "1x9 1x50880 45x65536 "

# No engine: a clear error naming every socket tried, and nothing recorded.
expect_code "no engine" 5 env DOCKER_HOST=unix://"$T"/no.sock "$EXPT" run
contains "names the socket tried" "$out" "$T/no.sock (no such socket)"
expect_code "DOCKER_HOST must be a unix socket" 5 env DOCKER_HOST=tcp://127.0.0.1:2375 "$EXPT" run
contains "says so" "$out" "unix socket"
equals "no run was created" "$("$EXPT" ps -o json | json 'len(d)')" "7"

# A container with the run's name already exists: the run fails with the engine's word for it.
curl -s --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' \
	-d "{\"Image\": \"$EXPT_TEST_PYTHON_IMAGE\"}" "http://d/v1.41/containers/create?name=$N-9" >/dev/null
expect_code "a name taken on the engine" 1 "$EXPT" run
contains "says so" "$out" "a container named $N-9 already exists"
expect_code "debug" 0 "$EXPT" debug $N-9
contains "debug says it too" "$out" "already exists"
contains "and what to do" "$out" "remove it"
curl -s --unix-socket "$SOCK" -X DELETE "http://d/v1.41/containers/$N-9?force=1"

# container.pull: never refuses to pull, always pulls though the engine has the image, missing
# (the default) pulls only what is missing. Pulls are counted in Podman's event log (tests/podman
# keeps it in a file).
expect_code "pull never, image missing" 1 "$EXPT" run "image=$EXPT_TEST_REGISTRY/expt/nope:none" container.pull=never
contains "says why" "$out" "container.pull is never"
if [ -r "${EXPT_TEST_PODMAN_DIR:-}/events.log" ]; then
	pulls() { grep -c "\"Name\":\"$EXPT_TEST_PYTHON_IMAGE\",\"Status\":\"pull\"" "$EXPT_TEST_PODMAN_DIR/events.log"; }
	before=$(pulls)
	expect_code "pull missing, image there" 0 "$EXPT" run -q
	equals "no pull" "$(pulls)" "$before"
	expect_code "pull always" 0 "$EXPT" run -q container.pull=always
	equals "one pull" "$(pulls)" "$((before + 1))"
	# On a terminal the pull shows its progress on one line; piped, nothing.
	expect_code "pull always, piped" 0 "$EXPT" run container.pull=always
	not_contains "no progress when piped" "$out" "pulling "
	expect_code "pull always, on a terminal" 0 script -qec "$EXPT run container.pull=always" /dev/null
	contains "progress on a terminal" "$out" "pulling $EXPT_TEST_PYTHON_IMAGE: "
	contains "in layers" "$out" "layers"
else
	echo "# skipped: counting pulls (no Podman event log in EXPT_TEST_PODMAN_DIR)"
fi
expect_code "a bad pull policy" 2 "$EXPT" run container.pull=sometimes
contains "names the choices" "$out" "missing, always or never"

# An input that does not exist: nothing is run.
expect_code "a missing input" 5 "$EXPT" run inputs.data=./nope
contains "names the path" "$out" "nope does not exist"

# The container: section of the spec is checked like the rest.
expect_code "a bad ulimit" 2 "$EXPT" run container.ulimits.nofile=lots
contains "names the field" "$out" "container.ulimits.nofile"
expect_code "an unknown limit" 2 "$EXPT" run container.ulimits.nofiles=10
contains "suggests the right one" "$out" "nofile"
expect_code "soft above hard" 2 "$EXPT" run container.ulimits.nproc=20:10
expect_code "an unknown key" 2 "$EXPT" run container.networks=none


# Detached (EXPT_BACKEND_DETACHED): the engine keeps runs going without expt. The runs wait for a
# file in the project (mounted at its own path), so nothing here depends on timing.
last_run() { "$EXPT" ps -o json | json 'max(d, key=lambda r: int(r["id"].rsplit("-", 1)[1]))["id"]'; }
next_run() { echo "$N-$(($("$EXPT" ps -o json | json 'max([int(r["id"].rsplit("-", 1)[1]) for r in d] + [0])') + 1))"; }
run_row() { "$EXPT" ps -o json | json "[(r['status'], r['exit_code'], r['reason']) for r in d if r['id']=='$1'][0]"; }
rm -f release
R=$(next_run)
expect_code "-d, every run can start at once" 0 "$EXPT" run -d mode=wait
contains "the engine keeps it: no supervisor" "$out" "keeps it going without expt"
not_contains "none is forked" "$out" "supervisor pid"
wait_status $R running
wait_lines $R waiting 1
expect_code "debug" 0 "$EXPT" debug $R
contains "says expt left it to the engine" "$out" "left it to the engine"
touch release
wait_status $R succeeded
equals "its end, from inspect" "$(run_row $R)" "('succeeded', 0, 'exit')"
expect_code "logs" 0 "$EXPT" logs $R
contains "output no expt process followed comes from the engine" "$out" "released"
expect_code "show" 0 "$EXPT" show $R -o json
equals "its metric reaches the store" "$(echo "$out" | json 'd["metrics"]["acc"]["last"]')" "0.75"
equals "its container is removed once its end is recorded" "$(containers_of $N)" "0"
rm -f release

# The supervisor killed: the container goes on, ps adopts it, then records how it ended.
R=$(next_run)
expect_code "-d with a timeout has a supervisor" 0 "$EXPT" run -d mode=wait code=4 timeout=1h
sup=$(echo "$out" | sed -n 's/.*supervisor pid \([0-9]*\).*/\1/p')
wait_status $R running
wait_lines $R waiting 1
kill -KILL "$sup" 2>/dev/null
for ((i = 0; i < 100; i++)); do [ -d /proc/"$sup" ] && [ "$(awk '{print $3}' /proc/"$sup"/stat 2>/dev/null)" != Z ] || break; sleep 0.05; done
equals "ps: still running, the engine has it" "$(status_of $R)" "running"
equals "its container goes on" "$(containers_of $N)" "1"
expect_code "debug" 0 "$EXPT" debug $R
contains "says it was adopted" "$out" "the engine still runs it"
touch release
wait_status $R failed
equals "its exit code, from inspect" "$(run_row $R)" "('failed', 4, 'exit')"
expect_code "logs" 0 "$EXPT" logs $R
contains "what the supervisor saw" "$out" "waiting"
contains "and what came after it died" "$out" "released"
equals "each line once" "$(grep -c waiting .expt/runs/$R/logs/stdout.log)" "1"
expect_code "show" 0 "$EXPT" show $R -o json
equals "its metric reaches the store" "$(echo "$out" | json 'd["metrics"]["acc"]["last"]')" "0.75"
expect_code "debug" 0 "$EXPT" debug $R
contains "the engine's last word, kept after the container is gone" "$out" "(removed) ended"
equals "removed" "$(containers_of $N)" "0"
rm -f release

# More runs than parallel: the queued one needs the supervisor. With it gone, the running one
# goes on and the queued one is lost (no expt process is left to start it).
R=$(next_run)
R2=$N-$((${R##*-} + 1))
expect_code "-d, two runs, parallel 1" 0 "$EXPT" run -d mode=wait code=0,5 parallel=1
sup=$(echo "$out" | sed -n 's/.*supervisor pid \([0-9]*\).*/\1/p')
wait_status $R running
kill -KILL "$sup" 2>/dev/null
for ((i = 0; i < 100; i++)); do [ -d /proc/"$sup" ] && [ "$(awk '{print $3}' /proc/"$sup"/stat 2>/dev/null)" != Z ] || break; sleep 0.05; done
equals "the queued run is lost with its supervisor" "$(run_row $R2)" "('failed', None, 'supervisor-lost')"
equals "the running one goes on" "$(status_of $R)" "running"
touch release
wait_status $R succeeded
rm -f release

# on_conflict: a container with the run's name exists already.
mkname() {
	curl -s --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' \
		-d "{\"Image\": \"$EXPT_TEST_PYTHON_IMAGE\", \"Labels\": {\"t\": \"$N\"}}" "http://d/v1.41/containers/create?name=$1" >/dev/null
}
R=$(next_run)
mkname $R
expect_code "on_conflict: replace" 0 "$EXPT" run -q on_conflict=replace
equals "the old container was replaced" "$(engine "/containers/$R/json" | json 'd.get("Config", {}).get("Labels", {}).get("t", "")' 2>/dev/null)" ""
R=$(next_run)
mkname $R
expect_code "on_conflict: new-id" 0 "$EXPT" run on_conflict=new-id container.keep=true
contains "under another name" "$out" "started (container:"
equals "the other container is left alone" "$(engine "/containers/$R/json" | json 'd["Config"]["Labels"]["t"]')" "$N"
equals "the run's own, named after it" "$(engine "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22expt.dev%2Frun%3D$R%22%5D%7D" | json 'd[0]["Names"][0].lstrip("/").startswith("'"$R"'-")')" "True"
expect_code "rm" 0 "$EXPT" rm $R
curl -s --unix-socket "$SOCK" -X DELETE "http://d/v1.41/containers/$R?force=1" >/dev/null

# cleanup: failed runs' containers kept (for inspection), succeeded ones removed.
expect_code "cleanup failed: keep, a failure" 1 "$EXPT" run -q code=6 cleanup.failed=keep
R=$(last_run)
equals "its container is kept" "$(containers_of $N)" "1"
expect_code "debug" 0 "$EXPT" debug $R
contains "debug asks the engine" "$out" "exit code: 6"
expect_code "cleanup failed: keep, a success" 0 "$EXPT" run -q cleanup.failed=keep
equals "its container is removed" "$(containers_of $N)" "1"
expect_code "rm removes the kept one" 0 "$EXPT" rm $R
equals "none left" "$(containers_of $N)" "0"

# plan and --dry-run need no engine.
expect_code "plan without an engine" 0 env DOCKER_HOST=unix://"$T"/no.sock "$EXPT" plan
expect_code "--dry-run without an engine" 0 env DOCKER_HOST=unix://"$T"/no.sock "$EXPT" run --dry-run -o json resources.memory=64Mi
equals "shows the container's create body" "$(echo "$out" | json '(d["runs"][0]["request"]["Image"], d["runs"][0]["request"]["HostConfig"]["Memory"], d["runs"][0]["request"]["Labels"]["expt.dev/experiment"])')" "('$EXPT_TEST_PYTHON_IMAGE', 67108864, '$N')"


# container.engine: the engine that answers must be the one asked for.
expect_code "engine: docker, Podman answers" 5 "$EXPT" run -q container.engine=docker
contains "says which answered" "$out" "answers as Podman, container.engine is docker"
expect_code "engine: podman" 0 "$EXPT" run -q container.engine=podman

# container.user: files the run writes to an output belong to that user (an output directory
# anyone may write to, as the run is not the invoking user here).
chmod 755 "$T" # the project is mounted and is the working directory: that user must enter it
mkdir -p shared && chmod 1777 shared
cat > user.yaml <<YAML
name: u$N
image: $EXPT_TEST_PYTHON_IMAGE
backend: container
command: python3 u.py
args: none
outputs: {res: {to: ./shared}}
container: {network: none, user: "4321:4321"}
YAML
cat > u.py <<'PY'
import os
open(os.path.join(os.environ["EXPT_OUTPUT_RES"], "u.txt"), "w").write(str(os.getuid()))
PY
expect_code "container.user" 0 "$EXPT" run -q -f user.yaml
equals "the run ran as that user" "$(cat shared/u.txt 2>/dev/null)" "4321"
equals "and its file is that user's" "$(stat -c %u:%g shared/u.txt 2>/dev/null)" "4321:4321"

# container.code: image runs the image's own code: the project is not mounted.
expect_code "code: image, the project's file is not there" 1 "$EXPT" run -q container.code=image container.keep=true
R=$(last_run)
cid=$(engine "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22expt.dev%2Frun%3D$R%22%5D%7D" | json 'd[0]["Id"]')
not_contains "no bind of the project" "$(engine "/containers/$cid/json" | json 'd["HostConfig"]["Binds"]')" "$T:$T"
expect_code "rm" 0 "$EXPT" rm $R
expect_code "code: mount (the default) mounts it" 0 "$EXPT" run -q container.code=mount
expect_code "a bad code" 2 "$EXPT" run container.code=copy
contains "names the choices" "$out" "mount or image"


# Registry credentials from the Docker client's config (DOCKER_CONFIG/config.json, `auths`),
# against the htpasswd registry of tests/registry. Pulled every time: the engine outlives tests.
if [ -n "${EXPT_TEST_REGISTRY_AUTH:-}" ]; then
	AIMG=$EXPT_TEST_REGISTRY_AUTH/expt/python3:bookworm
	mkdir -p dockercfg
	dockercfg() { printf '{"auths": {"%s": {"auth": "%s"}}}' "$1" "$(printf '%s:%s' "$EXPT_TEST_REGISTRY_USER" "$2" | base64 -w0)" >dockercfg/config.json; }
	expect_code "a private registry, no credentials" 1 env DOCKER_CONFIG="$T/dockercfg" "$EXPT" run -q "image=$AIMG" container.pull=always
	expect_code "debug" 0 "$EXPT" debug "$(last_run)"
	contains "says there were none" "$out" "no credentials for its registry in ~/.docker/config.json"
	dockercfg "$EXPT_TEST_REGISTRY_AUTH" wrong
	expect_code "a wrong password" 1 env DOCKER_CONFIG="$T/dockercfg" "$EXPT" run -q "image=$AIMG" container.pull=always
	dockercfg "https://$EXPT_TEST_REGISTRY_AUTH/v1/" "$EXPT_TEST_REGISTRY_PASSWORD"
	expect_code "the right one" 0 env DOCKER_CONFIG="$T/dockercfg" "$EXPT" run -q "image=$AIMG" container.pull=always
else
	echo "# skipped: registry credentials (no EXPT_TEST_REGISTRY_AUTH)"
fi


# libexpt and the Python binding of this expt are mounted for the run (EXPT_LIBRARY,
# PYTHONPATH), with the libraries libexpt needs: the dynamic loader of the image resolves them
# all. (The test image's Python has no ctypes, so the binding itself cannot run there.)
expect_code "libexpt in the container" 0 "$EXPT" run -q 'command=/lib64/ld-linux-x86-64.so.2 --list /expt/lib/libexpt.so'
R=$(last_run)
expect_code "logs" 0 "$EXPT" logs $R
contains "its libraries are found" "$out" "libjansson.so.4 => /expt/lib/libjansson.so.4"
not_contains "none missing" "$out" "not found"
expect_code "the contract names them" 0 "$EXPT" run -q 'command=sh -c "echo lib=$EXPT_LIBRARY py=$PYTHONPATH; ls $PYTHONPATH/expt/__init__.py"'
expect_code "logs" 0 "$EXPT" logs "$(last_run)"
contains "EXPT_LIBRARY and PYTHONPATH" "$out" "lib=/expt/lib/libexpt.so py=/expt/python"
contains "the binding is there" "$out" "/expt/python/expt/__init__.py"

# files: each local file bind-mounted read-only where the spec says (absolute, or under the
# run's working directory: the project's path).
mkdir -p fsrc && printf '{"k": 42}\n' >fsrc/c.json
printf 'files: {/etc/expt-test/c.json: fsrc/c.json, cfg/c.json: fsrc/c.json}\n' >>expt.yaml
expect_code "a run with files:" 0 "$EXPT" run mode=files
contains "the file at its absolute path" "$out" 'abs: {"k": 42}'
contains "the file under the working directory" "$out" 'rel: {"k": 42}'
contains "mounted read-only" "$out" "read-only"
sed -i 's|^files: .*|files: {/etc/expt-test/c.json: fsrc/missing.json}|' expt.yaml
expect_code "a missing local file: nothing runs" 2 "$EXPT" run mode=files
contains "the error names the field" "$out" "files./etc/expt-test/c.json: cannot read"

finish
