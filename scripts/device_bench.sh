#!/usr/bin/env bash
# The bench stages of scripts/device_session.sh (see its header for what to
# build and carry): `chestcam bench` at 28, 64 and 224 px on CUDA, a
# ChestMNIST-sized 28 px epoch (defaults, eager, --cudnn-benchmark) and the full
# ChestMNIST-224 memory run.
exec env STAGES="${STAGES:-bench28 bench64 bench224 epoch28 memfull}" bash "$(dirname "$0")/device_session.sh"
