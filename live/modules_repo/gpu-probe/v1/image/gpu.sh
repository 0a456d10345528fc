#!/bin/sh
# A GPU job: lists the NVIDIA devices and GPUs the container was given; fails when it was given none.
set -eu
ls /dev/nvidia0 > /dev/null 2>&1 || { echo "no GPU device in the container" >&2; exit 4; }
ls /dev | grep '^nvidia' | sort > /outputs/devices.txt
for f in /proc/driver/nvidia/gpus/*/information; do
  [ -r "$f" ] && grep -E '^(Model|Bus Location)' "$f" >> /outputs/gpus.txt
done
cat /outputs/devices.txt
