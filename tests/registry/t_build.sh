#!/usr/bin/env bash
# expt build against the real test registries (tests/registry/up: Debian's docker-registry, open
# and htpasswd): the image read back with skopeo and unpacked with umoci, reproducibility across
# clones, what a one-line change uploads (counted in the registry's access log), credentials from
# a DOCKER_CONFIG (auths, credHelpers, credsStore), clear errors, and the image run by Podman
# through the container backend where it is up.
for f in "${EXPT_TEST_REGISTRY_ENV:-}" "${EXPT_TEST_PODMAN_ENV:-}"; do
	# shellcheck disable=SC1090
	[ -n "$f" ] && [ -r "$f" ] && . "$f"
done
if [ -z "${EXPT_TEST_REGISTRY:-}" ] || [ -z "${EXPT_TEST_PYTHON_IMAGE:-}" ]; then
	echo "skipped: no test registry (run tests/registry/up, or ctest with its fixture)"
	exit 77
fi
for tool in skopeo umoci git; do
	command -v "$tool" >/dev/null || { echo "skipped: $tool is missing (scripts/deps --test)"; exit 77; }
done
. "$(dirname "$0")/../cli/lib.sh"
export DOCKER_CONFIG=$T/docker-empty # no credentials unless a check sets some
mkdir -p "$DOCKER_CONFIG"

REG=$EXPT_TEST_REGISTRY
NS=expt-test/b$$x$RANDOM # repositories of this test only: the access log is filtered by it
BASE=$EXPT_TEST_PYTHON_IMAGE
ACCESS=$EXPT_TEST_REGISTRY_DIR/log/registry.log

# project DIR VERSION: a git project with code, an ignored data dir and a build: section.
project() {
	mkdir -p "$1/pkg" "$1/data" && cd "$1" || return 1
	git init -q . && git config user.email t@t && git config user.name t
	printf 'import pkg.mod\nprint("hello from the image", pkg.mod.V)\n' > main.py
	printf 'V = "%s"\n' "$2" > pkg/mod.py
	printf '#!/bin/sh\necho run.sh\n' > run.sh
	chmod 755 run.sh
	chmod 644 main.py pkg/mod.py
	echo 'data/' > .gitignore
	echo big > data/weights.bin
	echo 'token' > secret.txt
	cat > expt.yaml <<YAML
name: app
command: python3 main.py
build:
  base: $BASE
  repository: $REG/$NS/app
  exclude: [secret.txt]
  env: {GREETING: hi}
YAML
	git add -A && git commit -qm v1
	cd "$T" || return 1
}
# requests REPO-PATH-PART: access-log lines (method and path) for this test's repositories since
# the mark (the byte count of the log when mark ran).
mark() { MARK=$(stat -c %s "$ACCESS"); }
requests() { tail -c +$((MARK + 1)) "$ACCESS" | grep -o "\"[A-Z]* /v2/$NS/[^ ]*" | tr -d '"'; }

project "$T/p1" v1
cd "$T/p1"
mark
expect_code "expt build pushes onto the test base image" 0 "$EXPT" build -o json
printf '%s' "$out" > "$T/b1.json"
REF=$(json 'd["ref"]' < "$T/b1.json")
DIGEST=$(json 'd["digest"]' < "$T/b1.json")
case "$REF" in "$REG/$NS/app@sha256:"*) pass "the reference is pinned: $REF" ;; *) fail "pinned reference" "$out" ;; esac
equals "the base layer was mounted from the base's repository, not uploaded" \
	"$(json 'd["blobs"]["mounted"], d["blobs"]["pushed"]' < "$T/b1.json")" "1 2"
equals "text output is the reference alone" "$("$EXPT" build 2>&1)" "$REF"
equals "not on a terminal: nothing on stderr" "$("$EXPT" build 2>&1 >/dev/null)" ""
if command -v script >/dev/null; then
	tty_out=$(script -qec "$EXPT build" /dev/null 2>&1 | tr '\r' '\n')
	contains "on a terminal: a line per blob (base layer present)" "$tty_out" "base layer sha256:"
	contains "... and the manifest pushed" "$tty_out" "manifest   sha256:${DIGEST:7:12}"
	tty_out=$(script -qec "$EXPT build -q" /dev/null 2>&1 | tr -d '\r')
	equals "on a terminal with -q: the reference alone" "$tty_out" "$REF"
fi

insp=$(skopeo inspect --tls-verify=false "docker://$REF" 2>&1)
equals "skopeo inspect: the registry serves the digest expt printed" "$(printf '%s' "$insp" | jq -r .Digest)" "$DIGEST"
equals "skopeo inspect: base layer + one code layer" "$(printf '%s' "$insp" | jq -r '.Layers | length')" 2
cfg=$(skopeo inspect --config --tls-verify=false "docker://$REF" 2>&1)
equals "config: WorkingDir /app, GREETING=hi in Env, the base's Cmd kept" \
	"$(printf '%s' "$cfg" | jq -c '[.config.WorkingDir, (.config.Env | index("GREETING=hi") != null), .config.Cmd]')" \
	'["/app",true,["python3"]]'
equals "config: the new diff_id and a history entry" \
	"$(printf '%s' "$cfg" | jq -c '[(.rootfs.diff_ids | length), .history[-1].created_by]')" '[2,"expt build"]'
tags=$(skopeo list-tags --tls-verify=false "docker://$REG/$NS/app" 2>&1)
contains "the image is tagged src-<digest>" "$tags" "src-${DIGEST:7:24}"

# The files, their content and modes, as the image holds them.
if skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$T/layout:x" >"$T/copy.log" 2>&1 &&
	umoci raw unpack --image "$T/layout:x" "$T/rootfs" >>"$T/copy.log" 2>&1; then
	pass "skopeo copy + umoci unpack"
else
	fail "skopeo copy + umoci unpack" "$(cat "$T/copy.log")"
fi
R=$T/rootfs/app
equals "main.py has its content" "$(cat "$R/main.py" 2>&1)" "$(cat "$T/p1/main.py")"
equals "pkg/mod.py is there" "$(cat "$R/pkg/mod.py" 2>&1)" 'V = "v1"'
equals "modes: run.sh 755, main.py 644, pkg 755" "$(stat -c '%a' "$R/run.sh" "$R/main.py" "$R/pkg" 2>&1 | tr '\n' ' ')" "755 644 755 "
equals "owner root:root, mtime 1 s after the epoch" "$(stat -c '%u:%g %Y' "$R/main.py" 2>&1)" "0:0 1"
[ ! -e "$R/data" ] && pass "data/ (in .gitignore) is left out" || fail "data/ left out" "$(ls -la "$R")"
[ ! -e "$R/secret.txt" ] && pass "secret.txt (build.exclude) is left out" || fail "secret.txt left out"
[ ! -e "$R/.git" ] && pass ".git is left out" || fail ".git left out"
out=$(chroot "$T/rootfs" /bin/sh -c 'cd /app && python3 main.py' 2>&1)
equals "the code runs from the image's rootfs (chroot)" "$out" "hello from the image v1"

# Two clones, one digest.
cd "$T" && git clone -q "$T/p1" "$T/clone1" && git clone -q "$T/p1" "$T/clone2"
d1=$(cd "$T/clone1" && "$EXPT" build 2>&1)
d2=$(cd "$T/clone2" && touch main.py && "$EXPT" build 2>&1)
equals "two clones (different paths and mtimes) give one digest" "$d1" "$d2"

# A one-line change: one new layer, the config and the manifest are uploaded; the base is not.
cd "$T/clone1" && sed -i 's/v1/v2/' pkg/mod.py
mark
expect_code "expt build after a one-line change" 0 "$EXPT" build -o json
printf '%s' "$out" > "$T/b2.json"
reqs=$(requests)
ups=$(printf '%s\n' "$reqs" | grep -c '^PUT .*/blobs/uploads/')
equals "the registry saw 2 blob uploads (layer, config) and 1 manifest PUT" \
	"$ups $(printf '%s\n' "$reqs" | grep -c '^PUT .*/manifests/')" "2 1"
contains "the uploaded blobs are the new layer's and config's" "$(printf '%s\n' "$reqs" | grep '^PUT .*/blobs/uploads/')" \
	"$(json 'd["layer"]["digest"]' < "$T/b2.json")"
not_contains "the base layer was only asked about (HEAD), not uploaded or mounted again" \
	"$(printf '%s\n' "$reqs" | grep -v '^HEAD ')" "$(printf '%s' "$insp" | jq -r '.Layers[0]')"
equals "8 requests in all: 3 HEAD, 2 POST, 3 PUT" \
	"$(printf '%s\n' "$reqs" | cut -d' ' -f1 | sort | uniq -c | awk '{printf "%s %s ", $1, $2}')" "3 HEAD 2 POST 3 PUT "
equals "expt's own count agrees: 2 pushed, base present" "$(json 'd["blobs"]["pushed"], d["blobs"]["present"]' < "$T/b2.json")" "2 1"

# .dockerignore replaces .gitignore, with '!' re-including.
mkdir -p "$T/di/docs" && cd "$T/di" && echo 'print(1)' > a.py && echo x > docs/a.md && echo y > docs/keep.md && echo n > notes.log
printf '# comment\n*.log\ndocs\n!docs/keep.md\n' > .dockerignore
sed "s#$NS/app#$NS/di#" "$T/p1/expt.yaml" > expt.yaml
REF2=$("$EXPT" build 2>&1) && skopeo copy -q --src-tls-verify=false "docker://$REF2" "oci:$T/layout:di" >/dev/null 2>&1 &&
	umoci raw unpack --image "$T/layout:di" "$T/rootfs-di" >/dev/null 2>&1
equals ".dockerignore: *.log and docs/ out, docs/keep.md back in" \
	"$(cd "$T/rootfs-di/app" 2>/dev/null && find . -type f | sort | tr '\n' ' ')" "./.dockerignore ./a.py ./docs/keep.md ./expt.yaml "

# Errors that say what is wrong.
cd "$T/p1"
expect_code "a missing base image: exit 3" 3 "$EXPT" build build.base="$REG/expt/nope:1"
contains "... naming the image and the registry" "$out" "the base image $REG/expt/nope:1 is not in the registry $REG"
expect_code "an unsupported platform: exit 2" 2 "$EXPT" build --platform linux/s390x
contains "... naming what the base has" "$out" "is linux/amd64 only, not linux/s390x"
expect_code "an unreachable registry: exit 5" 5 "$EXPT" build build.repository=127.0.0.1:9/x/y build.base=127.0.0.1:9/x/base
contains "... says it cannot reach it" "$out" "cannot reach the registry 127.0.0.1:9"
expect_code "a bad build.repository: exit 2 with file:line:col" 2 "$EXPT" build build.repository=Bad/Name
contains "... names the field" "$out" "build.repository: expected an image name"
printf 'name: nob\ncommand: x\nimage: build\n' > "$T/nobuild.yaml"
expect_code "image: build without a build: section: exit 2" 2 "$EXPT" run -f "$T/nobuild.yaml"
contains "... with file:line:col" "$out" "nobuild.yaml:3:8: image: image: build needs a build: section"

# The htpasswd registry: Basic auth with credentials from DOCKER_CONFIG.
A=$EXPT_TEST_REGISTRY_AUTH
authcfg() { # DIR USER PASS
	mkdir -p "$1" && printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$A" "$(printf '%s:%s' "$2" "$3" | base64 -w0)" > "$1/config.json"
}
authcfg "$T/dc-good" "$EXPT_TEST_REGISTRY_USER" "$EXPT_TEST_REGISTRY_PASSWORD"
authcfg "$T/dc-bad" "$EXPT_TEST_REGISTRY_USER" wrong
ABASE=$A/${BASE#"$REG"/}
set -- build.base="$ABASE" build.repository="$A/$NS/auth"
expect_code "auth registry: no credentials is a clear 401" 5 "$EXPT" build "$@"
contains "... saying no credentials were found" "$out" "HTTP 401 Unauthorized"
contains "... and where to put them" "$out" "no credentials for this registry"
DOCKER_CONFIG=$T/dc-bad expect_code "auth registry: a wrong password is a clear 401" 5 "$EXPT" build "$@"
contains "... saying the credentials were refused, and from where" "$out" "credentials were refused"
contains "... naming the config file" "$out" "$T/dc-bad/config.json"
DOCKER_CONFIG=$T/dc-good expect_code "auth registry: auths in config.json (Basic)" 0 "$EXPT" build "$@"
case "$out" in "$A/$NS/auth@sha256:"*) pass "auth registry: pinned reference" ;; *) fail "auth registry ref" "$out" ;; esac

# A base on another registry (the open one) than the repository (the auth one): the base layer
# is copied across (read anonymously from one, written with the user's credentials to the other).
DOCKER_CONFIG=$T/dc-good expect_code "base on another registry: copied, not mounted" 0 "$EXPT" build -o json \
	build.base="$BASE" build.repository="$A/$NS/copied"
printf '%s' "$out" > "$T/copied.json"
equals "... 3 blobs pushed (base layer, code layer, config), none mounted" \
	"$(json 'd["blobs"]["pushed"], d["blobs"]["mounted"]' < "$T/copied.json" 2>&1)" "3 0"
equals "... the copy has the same digest as the image built on the same registry" \
	"$(json 'd["digest"]' < "$T/copied.json" 2>&1)" "$(json 'd["digest"]' < "$T/b1.json")"

# Credential helpers: credHelpers for the host, and credsStore for all.
mkdir -p "$T/bin" "$T/dc-helper" "$T/dc-store"
cat > "$T/bin/docker-credential-expttest" <<SH
#!/bin/sh
read -r server
[ "\$1" = get ] && [ "\$server" = "$A" ] || { echo "credentials not found in native keychain" >&2; exit 1; }
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "\$server" "$EXPT_TEST_REGISTRY_USER" "$EXPT_TEST_REGISTRY_PASSWORD"
SH
chmod +x "$T/bin/docker-credential-expttest"
printf '{"credHelpers":{"%s":"expttest"}}\n' "$A" > "$T/dc-helper/config.json"
printf '{"credsStore":"expttest"}\n' > "$T/dc-store/config.json"
PATH=$T/bin:$PATH DOCKER_CONFIG=$T/dc-helper expect_code "auth registry: credHelpers (docker-credential-expttest get)" 0 "$EXPT" build "$@"
PATH=$T/bin:$PATH DOCKER_CONFIG=$T/dc-store expect_code "auth registry: credsStore" 0 "$EXPT" build "$@"
printf '{"credHelpers":{"%s":"absent"}}\n' "$A" > "$T/dc-helper/config.json"
DOCKER_CONFIG=$T/dc-helper expect_code "a helper that is not installed: a clear error" 2 "$EXPT" build "$@"
contains "... naming it" "$out" "docker-credential-absent get"

# The Dockerfile path: no builder here → a message naming what was tried; with Podman's CLI
# (configured by tests/podman/up) the image is built and pushed, tagged with its inputs' digest.
mkdir -p "$T/dfp" && cd "$T/dfp" && echo 'print("from the Dockerfile image")' > main.py
printf 'FROM %s\nCOPY main.py /app/main.py\n' "$BASE" > Dockerfile
printf 'name: dfp\ncommand: python3 /app/main.py\nbuild:\n  dockerfile: Dockerfile\n  repository: %s\n' "$REG/$NS/df" > expt.yaml
mkdir -p "$T/nobin"
PATH=$T/nobin expect_code "dockerfile: no builder available: exit 5" 5 "$EXPT" build
contains "... naming the three builders tried" "$out" "tried docker buildx (docker buildx version, docker info), podman (podman --version) and buildah"
expect_code "base and dockerfile together: exit 2" 2 "$EXPT" build build.base="$BASE"
contains "... saying they exclude each other" "$out" "base and dockerfile exclude each other"
if [ -n "${EXPT_TEST_CONTAINERS_CONF:-}" ] && command -v podman >/dev/null; then
	export CONTAINERS_CONF=$EXPT_TEST_CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$EXPT_TEST_CONTAINERS_STORAGE_CONF \
		CONTAINERS_REGISTRIES_CONF=$EXPT_TEST_CONTAINERS_REGISTRIES_CONF
	expect_code "dockerfile: built and pushed by the first builder that works" 0 "$EXPT" build -o json
	printf '%s' "$out" > "$T/df.json"
	equals "... podman, here" "$(json 'd["builder"]' < "$T/df.json" 2>&1)" podman
	DFREF=$(json 'd["ref"]' < "$T/df.json" 2>/dev/null)
	equals "... the registry serves the digest expt printed" \
		"$(skopeo inspect --tls-verify=false "docker://$DFREF" 2>&1 | jq -r .Digest)" "$(json 'd["digest"]' < "$T/df.json" 2>&1)"
	contains "... tagged src-<digest of the inputs>" "$(skopeo list-tags --tls-verify=false "docker://$REG/$NS/df" 2>&1)" "$(json 'd["tag"]' < "$T/df.json" 2>&1)"
	echo 'RUN false' >> Dockerfile
	expect_code "dockerfile: a failing build: exit 5" 5 "$EXPT" build
	contains "... naming the builder and quoting its output" "$out" "podman failed (exit"
else
	echo "# Podman's CLI not configured (tests/podman/up): the Dockerfile build check is skipped"
fi

# The image runs (Podman, through the container backend), pinned to its digest.
if [ -n "${EXPT_TEST_DOCKER_HOST:-}" ]; then
	export DOCKER_HOST=$EXPT_TEST_DOCKER_HOST
	mkdir -p "$T/runner" && cd "$T/runner"
	cat > expt.yaml <<YAML
name: runimg$$
image: $REF
backend: container
command: python3 /app/main.py
args: none
container: {network: none}
YAML
	expect_code "expt run on Podman with the built image" 0 "$EXPT" run
	logs=$("$EXPT" logs "runimg$$" 2>&1)
	contains "the container prints what the code prints" "$logs" "hello from the image v1"
	# image: build in the spec: expt run builds, pushes and pins the run to the digest.
	cd "$T/clone1" && cat >> expt.yaml <<YAML
image: build
backend: container
args: none
container: {network: none}
YAML
	sed -i "s/^name: app/name: runbuild$$/" expt.yaml
	expect_code "image: build: expt run builds, pushes and runs" 0 "$EXPT" run
	contains "... the run prints the changed code's output" "$out" "hello from the image v2"
	# (expt.yaml is one of the project's files: the image differs from the ones above)
	RUNREF=$(printf '%s\n' "$out" | sed -n 's/^image //p')
	case "$RUNREF" in "$REG/$NS/app@sha256:"*) pass "... and names the pinned image: $RUNREF" ;; *) fail "pinned image" "$out" ;; esac
	show=$("$EXPT" show "runbuild$$-1" 2>&1)
	contains "expt show prints the run's pinned image" "$show" "image       $RUNREF"
	sed -i 's/^image: build$/image: x/' expt.yaml
	expect_code "expt run --build does the same for a spec with another image" 0 "$EXPT" run --build
	RUNREF=$(printf '%s\n' "$out" | sed -n 's/^image //p')
	show=$("$EXPT" show "runbuild$$-2" -o json 2>&1)
	equals "... its run is pinned to the digest too" "$(printf '%s' "$show" | json 'd["image"]')" "$RUNREF"
	case "$RUNREF" in "$REG/$NS/app@sha256:"*) pass "... which is a pinned reference" ;; *) fail "pinned --build" "$out" ;; esac
	"$EXPT" rm "runbuild$$" >/dev/null 2>&1 || true
else
	echo "# Podman not up (tests/podman/up): the run check is skipped"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
