#!/bin/sh
# Fault: writes part of its output, then exits with status 3.
echo partial > /outputs/partial.txt
echo "fault-crash: giving up" >&2
exit 3
