#!/bin/sh
# A cow says the message (wrapped at 40 columns), on stdout and in /outputs/cow.txt.
set -eu
text=$(printf '%s\n' "$1" | fold -s -w 40 | sed 's/ *$//')
width=$(printf '%s\n' "$text" | awk '{ if (length($0) > w) w = length($0) } END { print w + 0 }')
rule() { printf ' '; printf "%$((width + 2))s\n" '' | tr ' ' "$1"; }
{
  rule _
  printf '%s\n' "$text" | awk -v w="$width" '{ printf "< %-" w "s >\n", $0 }'
  rule -
  cat <<'COW'
        \   ^__^
         \  (oo)\_______
            (__)\       )\/\
                ||----w |
                ||     ||
COW
} | tee /outputs/cow.txt
