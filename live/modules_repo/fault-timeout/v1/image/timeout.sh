#!/bin/sh
# Fault: runs far past its 2 s timeout.
echo started > /outputs/started.txt
sleep 600
