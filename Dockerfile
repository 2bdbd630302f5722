# CLIPForensics on a CUDA runtime image: the repo plus its .venv, built by ./install.sh.
#
#   docker build -t clipforensics .
#   docker run --gpus all --ipc=host --rm -it \
#     -v "$PWD/datasets:/opt/clipforensics/datasets" \
#     -v "$PWD/weights:/opt/clipforensics/weights" \
#     -v "$PWD/runs:/opt/clipforensics/runs" \
#     clipforensics scripts/train.sh 4 --detector_path configs/detector/xception.yaml
#
# --ipc=host (or --shm-size=16g): DataLoader workers hand batches over in shared memory,
# and Docker's default /dev/shm (64 MB) is too small. Multi-node DDP also needs
# --network host so NCCL can reach the other nodes. No weights or data are baked in:
# mount datasets/ (data root), weights/ (pretrained backbones, see the error messages)
# and runs/ (outputs). torch comes from PyPI as its CUDA build; the host needs only the
# NVIDIA driver and the NVIDIA Container Toolkit.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Python 3.11 from the deadsnakes PPA (Ubuntu 22.04 ships 3.10); libglib/libgomp for OpenCV and torch.
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent ca-certificates \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
      build-essential libglib2.0-0 libgomp1 git \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/clipforensics

# Dependencies first, in their own layer: editing the code does not reinstall torch.
COPY requirements.txt requirements-dev.txt ./
RUN python3.11 -m venv .venv \
 && .venv/bin/python -m pip install --upgrade pip "setuptools>=64" wheel \
 && .venv/bin/python -m pip install -r requirements.txt -r requirements-dev.txt

# The repo, then the project's own installer (reuses .venv; installs the package editable).
COPY . .
RUN PYTHON=python3.11 ./install.sh

ENV PATH=/opt/clipforensics/.venv/bin:$PATH
CMD ["bash"]
