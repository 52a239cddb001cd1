#!/bin/bash
# Submit the Table 6 chain as a Slurm job array of N shards and a dependent merge job:
#
#   SHARDS=16 IMAGES=/data/val2017 ANN=/data/person_keypoints_val2017.json OUT=/shared/table6 \
#   SR_MODELS="bicubic realsr-df2k-x4" POSE_MODEL=movenet-thunder ./submit.sh
#
# Run it from examples/cluster (sbatch's working directory is where the scripts are found).
# OUT must be on a file system every node sees: all shards write their images into the same
# stage folders there, which is what `lrp merge` needs. Prints the two job ids.
set -euo pipefail
: "${SHARDS:?set SHARDS=N}" "${IMAGES:?set IMAGES=DIR}" "${ANN:?set ANN=FILE}" "${OUT:?set OUT=DIR (shared)}"
export SHARDS IMAGES ANN OUT SR_MODELS="${SR_MODELS:-bicubic}" POSE_MODEL="${POSE_MODEL:-movenet-thunder}" DEVICE="${DEVICE:-auto}"
[ -n "${LRP:-}" ] && export LRP
cd "$(dirname "$0")"
array=$(sbatch --parsable --export=ALL --array=0-$((SHARDS - 1)) shard.sbatch)
merge=$(sbatch --parsable --export=ALL --dependency=afterok:"${array%%;*}" merge.sbatch)
echo "shards: job $array (array 0-$((SHARDS - 1))); merge and evaluate: job $merge"
