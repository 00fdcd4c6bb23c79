#!/bin/sh
# Count the words of each file given (the bundled sample text by default).
set -eu
[ "$#" -gt 0 ] || set -- /data/input.txt
for file in "$@"; do
    printf '%s\t%s\n' "$(wc -w < "$file")" "$file"
done
