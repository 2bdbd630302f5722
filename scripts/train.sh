#!/usr/bin/env bash
# usage: scripts/train.sh GPUS_PER_NODE [NODES NODE_RANK MASTER_ADDR MASTER_PORT] TRAIN_ARGS...
#
# Distributed (DDP) training with torchrun: one process per GPU, on one or several nodes.
#
#   # one node, 4 GPUs (a free rendezvous port is picked automatically)
#   scripts/train.sh 4 --detector_path configs/detector/xception.yaml
#   # two nodes with 8 GPUs each: run on node 0 and on node 1 (NODE_RANK 1), same address/port
#   scripts/train.sh 8 2 0 10.0.0.1 29500 --detector_path configs/detector/efficientnet_b4.yaml
#   # CPU smoke test: 2 processes, gloo backend
#   scripts/train.sh 2 --detector_path configs/detector/timm_cnn_tiny.yaml --device cpu
#
# TRAIN_ARGS go to training/train.py unchanged (first one starting with "--"). The backend is
# NCCL on GPU and gloo on CPU (training/engine/distributed.py). train.batch_size is per process,
# so the global batch is GPUS_PER_NODE x NODES x batch_size. PYTHON overrides the interpreter
# (default: the repo's .venv). `python training/train.py --help` lists TRAIN_ARGS. Exit status: that of
# train.py (README "CLI conventions"); 2 for a usage error here.
set -euo pipefail

usage() {  # usage [STATUS]: the header above; on stdout for --help (status 0), else on stderr
  local status=${1:-2}
  local text
  text=$(sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//')
  if (( status == 0 )); then echo "$text"; else echo "$text" >&2; fi
  exit "$status"
}
[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && usage 0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

[[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]] || usage
GPUS_PER_NODE=$1
shift
# Up to four more positional arguments (NODES NODE_RANK MASTER_ADDR MASTER_PORT), before TRAIN_ARGS.
POSITIONAL=()
while [[ $# -gt 0 && "$1" != --* && ${#POSITIONAL[@]} -lt 4 ]]; do
  POSITIONAL+=("$1")
  shift
done
NODES=${POSITIONAL[0]:-1}
NODE_RANK=${POSITIONAL[1]:-0}
MASTER_ADDR=${POSITIONAL[2]:-}
MASTER_PORT=${POSITIONAL[3]:-29500}
[[ "$NODES" =~ ^[0-9]+$ && "$NODE_RANK" =~ ^[0-9]+$ && "$MASTER_PORT" =~ ^[0-9]+$ ]] || usage
if (( NODE_RANK >= NODES )); then
  echo "train.sh: NODE_RANK $NODE_RANK must be smaller than NODES $NODES" >&2
  exit 2
fi

if [[ "$NODES" == 1 && -z "$MASTER_ADDR" ]]; then
  RENDEZVOUS=(--standalone)  # single node: torchrun picks a free local port
else
  if [[ -z "$MASTER_ADDR" ]]; then
    echo "train.sh: NODES=$NODES needs MASTER_ADDR (the address of node 0, reachable from every node)" >&2
    exit 2
  fi
  RENDEZVOUS=(--nnodes "$NODES" --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT")
fi

exec "$PYTHON" -m torch.distributed.run "${RENDEZVOUS[@]}" --nproc_per_node "$GPUS_PER_NODE" \
  "$ROOT/training/train.py" "$@"
