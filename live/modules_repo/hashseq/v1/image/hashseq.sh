#!/bin/sh
# Deterministic compute: the sha256 of the decimal sequence 1..N, one number per line.
set -eu
n=$1
case $n in '' | *[!0-9]*) echo "N must be a positive integer, got '$n'" >&2; exit 2 ;; esac
if [ "$n" -lt 1 ] || [ "$n" -gt 10000000 ]; then echo "N must be in [1, 10000000], got $n" >&2; exit 2; fi
seq 1 "$n" | sha256sum | cut -d ' ' -f 1 > /outputs/sha256.txt
echo "$n" > /outputs/n.txt
cat /outputs/sha256.txt
