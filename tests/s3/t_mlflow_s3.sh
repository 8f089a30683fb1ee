#!/usr/bin/env bash
# s3:// artifacts against a real S3 server (SeaweedFS, tests/s3/up: the "s3" ctest fixture, or
# one this script starts when EXPT_S3_DIR is unset) behind a real MLflow server that serves no
# artifacts itself (tests/mlflow/up --artifacts s3: --no-serve-artifacts, default artifact root
# s3://BUCKET/mlflow-artifacts), with the endpoint and credentials in the environment as MLflow
# users set them. expt's sink uploads straight to S3 (SigV4 from C); the mlflow client lists and
# downloads exactly that; expt artifacts ls|get read back what a script logged with
# mlflow.log_artifact; a wrong secret gives a 403 naming the bucket and key. Exit 77: no S3 or
# no MLflow to be had.
. "$(dirname "$0")/../cli/lib.sh"

cleanup() {
	[ -d "$T/mlflow/run" ] && "$SRC/tests/mlflow/down" --dir "$T/mlflow" 2>/dev/null
	[ -d "$T/s3/run" ] && "$SRC/tests/s3/down" --dir "$T/s3" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
if [ -z "${EXPT_S3_DIR:-}" ] || [ ! -f "$EXPT_S3_DIR/env" ]; then
	EXPT_S3_DIR="$T/s3"
	"$SRC/tests/s3/up" --dir "$EXPT_S3_DIR" >/dev/null
	rc=$?
	[ "$rc" = 77 ] && { echo "skipped: no S3 server (tests/s3/up)"; exit 77; }
	[ "$rc" = 0 ] || { echo "not ok - tests/s3/up failed ($rc)"; exit 1; }
fi
"$SRC/tests/mlflow/up" --dir "$T/mlflow" --artifacts s3 --s3-env "$EXPT_S3_DIR/env" >/dev/null
rc=$?
[ "$rc" = 77 ] && { echo "skipped: no MLflow server (tests/mlflow/up)"; exit 77; }
[ "$rc" = 0 ] || { echo "not ok - tests/mlflow/up --artifacts s3 failed ($rc)"; exit 1; }
. "$EXPT_S3_DIR/env"
. "$T/mlflow/env"
PY=$EXPT_TEST_MLFLOW_PYTHON
URI=$EXPT_TEST_MLFLOW_URI
# As an MLflow user sets them for an S3 artifact store.
export MLFLOW_S3_ENDPOINT_URL=$EXPT_TEST_S3_ENDPOINT AWS_ACCESS_KEY_ID=$EXPT_TEST_S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$EXPT_TEST_S3_SECRET_KEY AWS_DEFAULT_REGION=$EXPT_TEST_S3_REGION
B=$EXPT_TEST_S3_BUCKET
mlflow_id() { "$EXPT" show "$1" -o json | json 'd["tags"]["mlflow.run_id"]'; }
X=$(printf '%04x%04x' $RANDOM $RANDOM)
git init -q . && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m init
SHA=$(python3 -c 'import hashlib; print(hashlib.sha256(bytes(range(256)) * 4096).hexdigest())')

# --- 1. The sink uploads straight to S3 -------------------------------------------------------
cat > sink.py <<'PY'
import os, expt
expt.log(loss=0.5, step=0)
open("model.txt", "w").write("weights v1\n")
os.makedirs("ckpt/sub", exist_ok=True)
open("ckpt/sub/state.bin", "wb").write(bytes(range(256)) * 4096)
open("ckpt/a b+c&d.txt", "w").write("odd name\n")
os.makedirs("many", exist_ok=True)
for i in range(1100):              # more than one page of ListObjectsV2 (1000 keys)
    open(f"many/{i:04d}.txt", "w").write(f"{i}\n")
expt.artifact("model.txt")
expt.artifact("ckpt", name="checkpoints/ckpt")
expt.artifact("many")
PY
cat > expt.yaml <<YAML
name: s3sink-$X
command: python3 sink.py
env: $(binding_env)
tracking: {uri: "$URI", sinks: [store, mlflow]}
YAML
expect_code "a run whose artifacts go to an s3:// location" 0 "$EXPT" run
not_contains "no sink error" "$out" "rejected"
m=$(mlflow_id "s3sink-$X-1")
equals "the MLflow run's artifact location is on S3" \
	"$(curl -sf "$URI/api/2.0/mlflow/runs/get?run_id=$m" | json "d['run']['info']['artifact_uri'].startswith('s3://$B/mlflow-artifacts/')")" "True"
# The mlflow client (boto3 underneath) lists every file and reads them back.
got=$("$PY" - "$URI" "$m" <<'PY' 2>&1
import hashlib, sys, mlflow
uri, run = sys.argv[1], sys.argv[2]
c = mlflow.tracking.MlflowClient(uri)
def walk(p=None):
    out = []
    for a in c.list_artifacts(run, p):
        out += walk(a.path) if a.is_dir else [a.path]
    return out
files = walk()
print(sorted(f for f in files if not f.startswith("many/")), len([f for f in files if f.startswith("many/")]))
m = mlflow.artifacts.download_artifacts(run_id=run, artifact_path="model.txt", tracking_uri=uri)
b = mlflow.artifacts.download_artifacts(run_id=run, artifact_path="checkpoints/ckpt/sub/state.bin", tracking_uri=uri)
print(open(m).read().strip(), hashlib.sha256(open(b, "rb").read()).hexdigest())
PY
)
equals "the mlflow client lists and reads exactly what expt uploaded" "$got" \
	"['checkpoints/ckpt/a b+c&d.txt', 'checkpoints/ckpt/sub/state.bin', 'model.txt'] 1100
weights v1 $SHA"
expect_code "artifacts ls" 0 "$EXPT" artifacts ls "s3sink-$X-1"
contains "lists the file, here and on S3" "$out" "checkpoints/ckpt/sub/state.bin"
contains "with where it is" "$out" "local, mlflow"
rm -rf ".expt/runs/s3sink-$X-1/output/artifacts"
expect_code "artifacts ls, once the local copy is gone" 0 "$EXPT" artifacts ls "s3sink-$X-1" -o json
equals "S3 alone: the files, their sizes" \
	"$(echo "$out" | json "sorted((f['path'], f['size'], f['local'], f['mlflow']) for f in d if not f['path'].startswith('many/'))")" \
	"[('checkpoints/ckpt/a b+c&d.txt', 9, False, True), ('checkpoints/ckpt/sub/state.bin', 1048576, False, True), ('model.txt', 11, False, True)]"
equals "all 1100 of a directory (two pages of the listing)" \
	"$(echo "$out" | json "len([f for f in d if f['path'].startswith('many/') and f['mlflow'] and f['size'] > 0])")" "1100"
expect_code "artifacts get from S3" 0 "$EXPT" artifacts get "s3sink-$X-1" checkpoints/ckpt/sub/state.bin "$T/state.bin"
equals "byte for byte" "$(sha256sum < "$T/state.bin" | cut -d' ' -f1)" "$SHA"
expect_code "a key with a space, a plus and an ampersand" 0 "$EXPT" artifacts get "s3sink-$X-1" "checkpoints/ckpt/a b+c&d.txt" "$T/odd.txt"
equals "reads back" "$(cat "$T/odd.txt")" "odd name"
expect_code "a file nobody has" 3 "$EXPT" artifacts get "s3sink-$X-1" nope.txt "$T/nope"
contains "says where it looked" "$out" "nor at s3://$B/mlflow-artifacts/"

# --- 2. What a script logs with mlflow.log_artifact, read back by expt -------------------------
cat > interop.py <<'PY'
import os, mlflow
os.makedirs("plots", exist_ok=True)
open("plots/curve.csv", "w").write("step,loss\n0,1.0\n1,0.5\n")
mlflow.log_artifact("plots/curve.csv", artifact_path="plots")
mlflow.log_text("hello from mlflow\n", "notes/readme.txt")
PY
cat > expt.yaml <<YAML
name: s3interop-$X
command: $PY interop.py
tracking: {uri: "$URI"}
YAML
expect_code "an unmodified mlflow.log_artifact script" 0 "$EXPT" run
expect_code "artifacts ls" 0 "$EXPT" artifacts ls "s3interop-$X-1" -o json
equals "expt lists what the script put on S3" \
	"$(echo "$out" | json "sorted((f['path'], f['mlflow']) for f in d)")" \
	"[('notes/readme.txt', True), ('plots/curve.csv', True)]"
expect_code "artifacts get" 0 "$EXPT" artifacts get "s3interop-$X-1" plots/curve.csv "$T/curve.csv"
equals "and reads it" "$(cat "$T/curve.csv")" "step,loss
0,1.0
1,0.5"
expect_code "artifacts ls PATH" 0 "$EXPT" artifacts ls "s3interop-$X-1" notes
contains "lists below PATH" "$out" "notes/readme.txt"
not_contains "only below PATH" "$out" "curve.csv"

# --- 3. Credentials S3 refuses ------------------------------------------------------------
cat > expt.yaml <<YAML
name: s3bad-$X
command: python3 sink.py
env: $(binding_env)
tracking: {uri: "$URI", sinks: [store, mlflow]}
YAML
expect_code "a wrong secret: the run still completes" 0 env AWS_SECRET_ACCESS_KEY=wrong-secret "$EXPT" run
contains "with the 403" "$out" "HTTP 403"
contains "naming the bucket and key" "$out" "s3://$B/mlflow-artifacts/"
contains "and what to check" "$out" "AWS_SECRET_ACCESS_KEY"
expect_code "artifacts ls with a wrong secret" 8 env AWS_SECRET_ACCESS_KEY=wrong-secret "$EXPT" artifacts ls "s3sink-$X-1"
contains "names the bucket" "$out" "s3://$B/mlflow-artifacts/"
expect_code "artifacts ls without credentials" 2 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$EXPT" artifacts ls "s3sink-$X-1"
contains "says what to set" "$out" "AWS_ACCESS_KEY_ID"
expect_code "but a file the run has here needs no credentials" 0 env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$EXPT" artifacts get "s3bad-$X-1" model.txt "$T/model-local.txt"
equals "it is the local copy" "$(cat "$T/model-local.txt")" "weights v1"

finish
