#!/usr/bin/env bash
# Train with xpk on GKE TPU slices, one or many (multi-slice: data parallel over DCN).
#
#   launch/xpk.sh --cluster my-cluster --tpu-type v5p-128 --num-slices 2 \
#       --image gcr.io/my-proj/samaudio-jax:latest --config configs/large.py \
#       --workdir gs://bucket/runs/large [--workload NAME] [--dry-run] [-- overrides...]
#
# With --num-slices N > 1 the run sets --config.mesh.dcn_data=N so the mesh puts its data
# axis across slices; FSDP and tensor parallelism stay inside each slice (ICI).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"

cluster="" tpu_type="" slices=1 image="" config="" workdir="" workload="samaudio-$(date +%m%d-%H%M)"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cluster) cluster=$2; shift 2 ;;
    --tpu-type) tpu_type=$2; shift 2 ;;
    --num-slices) slices=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
done
need --cluster "$cluster" "the GKE cluster made by 'xpk cluster create'"
need --tpu-type "$tpu_type" "e.g. v5p-128"
need --image "$image" "a container image with samaudio-jax[tpu,gcs] installed"
need --config "$config" "an experiment file under configs/"
need --workdir "$workdir" "a gs:// directory for checkpoints and metrics"

train="samaudio-jax train --config $config --workdir $workdir"
[ "$slices" -gt 1 ] && train+=" --config.mesh.dcn_data=$slices"
for arg in "${extra[@]+"${extra[@]}"}"; do train+=" $(printf '%q' "$arg")"; done
run xpk workload create --cluster "$cluster" --workload "$workload" --tpu-type "$tpu_type" \
  --num-slices "$slices" --docker-image "$image" --command "$train"
