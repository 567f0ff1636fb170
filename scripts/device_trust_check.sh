#!/usr/bin/env bash
# The trust stages of scripts/device_session.sh (see its header for what to
# build and carry): `chestcam trust` on CUDA against the CPU, and the
# README's phantom tables at 64 and 28 px.
exec env STAGES="${STAGES:-trust_parity table64 table28}" bash "$(dirname "$0")/device_session.sh"
