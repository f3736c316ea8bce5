#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice: set up every worker, then start the same command on all.
#
#   launch/tpu_pod.sh --tpu my-v5p-64 --zone us-east5-a --project my-proj \
#       --config configs/large.py --workdir gs://bucket/runs/large [--setup] [--dry-run] \
#       [-- --config.train.steps=100000 ...]
#
# jax.distributed.initialize() discovers the pod from the TPU environment, so no coordinator
# flags are needed. For several slices use launch/xpk.sh (multi-slice over DCN).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"

tpu="" zone="" project="" config="" workdir="" setup=0
repo_url=${REPO_URL:-https://github.com/samaudio-jax/samaudio-jax.git}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tpu) tpu=$2; shift 2 ;;
    --zone) zone=$2; shift 2 ;;
    --project) project=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --setup) setup=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
done
need --tpu "$tpu" "the TPU VM name"
need --zone "$zone" "the TPU zone"
need --config "$config" "an experiment file under configs/"
need --workdir "$workdir" "a gs:// or shared directory for checkpoints and metrics"

ssh=(gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all)
[ -n "$project" ] && ssh+=(--project "$project")

if [ "$setup" = 1 ]; then
  run "${ssh[@]}" --command "git clone $repo_url samaudio-jax 2>/dev/null || git -C samaudio-jax pull; cd samaudio-jax && python3 -m venv .venv && .venv/bin/pip install -q -e '.[tpu,gcs]'"
fi
train="cd samaudio-jax && .venv/bin/samaudio-jax train --config $config --workdir $workdir"
for arg in "${extra[@]+"${extra[@]}"}"; do train+=" $(printf '%q' "$arg")"; done
run "${ssh[@]}" --command "$train"
