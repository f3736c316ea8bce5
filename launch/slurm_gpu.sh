#!/usr/bin/env bash
# Train on a SLURM GPU cluster: one process per node, all GPUs of a node per process.
#
#   launch/slurm_gpu.sh --nodes 4 --gpus-per-node 8 --partition gpu \
#       --config configs/base.py --workdir /shared/runs/base [--dry-run] [-- overrides...]
#
# Writes an sbatch script and submits it. Inside the job the first node of the allocation is
# the coordinator; each task passes its SLURM_PROCID as the process id.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"

nodes="" gpus=8 partition="" config="" workdir="" port=${COORDINATOR_PORT:-12345}
venv=${VENV:-$PWD/.venv}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --gpus-per-node) gpus=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "error: unknown argument $1" >&2; exit 2 ;;
  esac
done
need --nodes "$nodes" "the number of nodes"
need --config "$config" "an experiment file under configs/"
need --workdir "$workdir" "a shared directory for checkpoints and metrics"

overrides=""
for arg in "${extra[@]+"${extra[@]}"}"; do overrides+=" $(printf '%q' "$arg")"; done
script=$(mktemp "${TMPDIR:-/tmp}/samaudio-slurm.XXXXXX.sbatch")
cat >"$script" <<SBATCH
#!/usr/bin/env bash
#SBATCH --job-name=samaudio-jax
#SBATCH --nodes=$nodes
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=$gpus
${partition:+#SBATCH --partition=$partition}
set -euo pipefail
head=\$(scontrol show hostnames "\$SLURM_JOB_NODELIST" | head -n 1)
srun bash -c '$venv/bin/samaudio-jax train --config $config --workdir $workdir \\
  --coordinator_address '"\$head"':$port --num_processes \$SLURM_NTASKS --process_id \$SLURM_PROCID$overrides'
SBATCH
echo "# sbatch script: $script"
[ "$DRY_RUN" = 1 ] && cat "$script"
run sbatch "$script"
