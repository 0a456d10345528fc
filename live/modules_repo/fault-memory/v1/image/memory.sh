#!/bin/sh
# Fault: fills a 256 MiB buffer, far above its 32 MiB limit, so the kernel kills it.
dd if=/dev/zero of=/dev/null bs=256M count=1
