#!/usr/bin/env bash
# The Kubernetes backend with real pods: python3 from the test registry's image on the cluster's
# real node (containerd + kubelet; tests/cluster/up --real-node, docs/cluster.md). What kwok
# cannot show: the program really runs, reads its params file (downward API), prints metrics
# that reach expt compare, exits with its own code, is OOMKilled by the kernel.
. "$(dirname "$0")/../cli/lib.sh"

. "$SRC/tests/cluster/testenv.sh"
cluster_test_env --real-node
E=kr$(date +%s | tail -c 5)$RANDOM
trap 'K delete jobs -l "expt.dev/experiment in ($E,${E}m)" --wait=false >/dev/null 2>&1; rm -rf "$T"' EXIT

cat >expt.yaml <<EOF
name: $E
image: $EXPT_TEST_REAL_NODE_REGISTRY/expt/python3:bookworm
command:
  - python3
  - -c
  - |
    import os, sys
    print("params", open(os.environ["EXPT_PARAMS_FILE"]).read())
    print("args", " ".join(sys.argv[1:]))
    open(os.path.join(os.environ["EXPT_OUTPUT_DIR"], "out.txt"), "w").write("ok")
    lr = float(os.environ["EXPT_PARAM_LR"])
    for step in range(3):
        print("expt: acc=%s step=%d" % (0.5 + 0.1 * step + lr, step), flush=True)
    sys.exit(int(os.environ["EXPT_PARAM_CODE"]))
params: {lr: 0.01}
sweep: {code: [0, 3]}
parallel: 2
kubernetes:
  namespace: $NS
  node_selector: {kubernetes.io/hostname: $EXPT_TEST_REAL_NODE_NAME}
  tolerations: [{key: $EXPT_TEST_REAL_NODE_TAINT, operator: Exists, effect: NoSchedule}]
EOF

expect_code "a sweep with one failing run exits 1" 1 "$EXPT" run --backend kubernetes
contains "the program read its params file" "$out" 'params {"lr":0.01,"code":3}'
contains "argv from args: auto" "$out" "args --lr 0.01 --code 3"
equals "code 0 succeeded" "$(status_of "$E-1")" "succeeded"
equals "code 3 failed" "$(status_of "$E-2")" "failed"
equals "with exit code 3" "$("$EXPT" ps -o json | json "[r['exit_code'] for r in d if r['id']=='$E-2'][0]")" "3"
equals "it ran on the real node" "$(K get pods -l "expt.dev/run=$E-1" -o jsonpath='{.items[0].spec.nodeName}')" "$EXPT_TEST_REAL_NODE_NAME"
out=$("$EXPT" compare "$E" -o json 2>&1)
contains "metrics the program printed reach compare" "$out" "0.71"
out=$("$EXPT" logs "$E-2" 2>&1)
contains "expt logs after the end" "$out" "args --lr 0.01 --code 3"
out=$("$EXPT" debug "$E-2" 2>&1)
contains "debug: exit code" "$out" "exit code 3"
contains "debug: the pod's last lines" "$out" "acc="

# Out of memory, as the kernel does it.
cat >expt.yaml <<EOF
name: ${E}m
image: $EXPT_TEST_REAL_NODE_REGISTRY/expt/python3:bookworm
command: [python3, -c, "x = bytearray(300 * 1024 * 1024); print('survived', len(x))"]
args: none
resources: {memory: 32Mi}
kubernetes:
  namespace: $NS
  node_selector: {kubernetes.io/hostname: $EXPT_TEST_REAL_NODE_NAME}
  tolerations: [{key: $EXPT_TEST_REAL_NODE_TAINT, operator: Exists, effect: NoSchedule}]
EOF
expect_code "a run past its memory limit exits 1" 1 "$EXPT" run --backend kubernetes
not_contains "it did not survive" "$out" "survived"
equals "reason oom" "$("$EXPT" ps -o json | json "[r['reason'] for r in d if r['id']=='${E}m-1'][0]")" "oom"
out=$("$EXPT" debug "${E}m-1" 2>&1)
contains "debug says OOMKilled" "$out" "OOMKilled"

finish
