#!/bin/sh
# Nondeterministic: 16 bytes from /dev/urandom and the clock, so no two runs give the same result.
set -eu
head -c 16 /dev/urandom | od -A n -t x1 | tr -d ' \n' > /outputs/random.txt
date -u +%Y-%m-%dT%H:%M:%SZ >> /outputs/random.txt
cat /outputs/random.txt
