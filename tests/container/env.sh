# Sourced by the container backend's tests: finds the Podman service and the test registry
# (tests/podman/up and tests/registry/up, ctest fixtures "podman" and "registry"). ctest passes
# their env files; by hand, eval their export lines first. Without an engine the test is
# skipped (exit 77), never passed.
for f in "${EXPT_TEST_REGISTRY_ENV:-}" "${EXPT_TEST_PODMAN_ENV:-}"; do
	# shellcheck disable=SC1090
	[ -n "$f" ] && [ -r "$f" ] && . "$f"
done
if [ -z "${EXPT_TEST_DOCKER_HOST:-}" ] || [ -z "${EXPT_TEST_PYTHON_IMAGE:-}" ]; then
	echo "skipped: no container engine (run tests/podman/up and tests/registry/up, or ctest with their fixtures)"
	exit 77
fi
export DOCKER_HOST=$EXPT_TEST_DOCKER_HOST
