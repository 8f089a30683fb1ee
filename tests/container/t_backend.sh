#!/usr/bin/env bash
# The backend-agnostic black-box tests (tests/cli/t_backend.sh) on the container backend, with
# the test registry's python3 image and no network.
. "$(dirname "$0")/env.sh"
export EXPT_TEST_BACKEND=container
export EXPT_TEST_BACKEND_ARGS="image=$EXPT_TEST_PYTHON_IMAGE container.network=none"
exec bash "$(dirname "$0")/../cli/t_backend.sh"
