#!/bin/bash
# tests/check_layers.sh: the include graph respects the layers (README.md,
# issue 9): wire/ and conf/ are the floor, cache/ and advice/ stand on
# them, proxy/ is on top. A file may include "config.h" and headers of its
# own folder or of the folders listed for it below, nothing else:
#   wire   -> wire
#   conf   -> conf, wire
#   cache  -> cache, conf, wire      (never advice/ nor proxy/)
#   advice -> advice, conf, wire     (never cache/ nor proxy/)
#   proxy  -> anything above
# cache/ and advice/ include none of each other on main (issue 9's start),
# so neither may. Every .c, .h and .def of each folder is read; a quoted
# include without a folder ("x.h") is refused too, so the check cannot be
# side-stepped. Prints TAP, one test per folder; finds the tree through
# $abs_top_srcdir (set by `make check`), or the first argument, or the
# script's own tree.

srcdir=${1:-${abs_top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}}

declare -A allowed=(
    [wire]="wire"
    [conf]="conf wire"
    [cache]="cache conf wire"
    [advice]="advice conf wire"
    [proxy]="proxy cache advice conf wire"
)
folders="wire conf cache advice proxy"

echo "1..5"
n=0
failed=0
for folder in $folders; do
    n=$((n + 1))
    files=$(cd "$srcdir" &&
        find "$folder" -type f \( -name '*.c' -o -name '*.h' -o -name '*.def' \) | sort)
    if [ -z "$files" ]; then
        echo "not ok $n - $folder/: no source files under $srcdir/$folder"
        failed=1
        continue
    fi
    bad=""
    count=0
    while IFS=: read -r file line inc; do
        [ -n "$file" ] || continue
        count=$((count + 1))
        [ "$inc" = "config.h" ] && continue
        case "$inc" in
        */*) to=${inc%%/*} ;;
        *) to="" ;;
        esac
        good=0
        for a in ${allowed[$folder]}; do
            [ "$to" = "$a" ] && good=1
        done
        [ "$good" = 1 ] || bad="$bad$file:$line: #include \"$inc\""$'\n'
    done < <(cd "$srcdir" && grep -Hn -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $files |
        sed -E 's/^([^:]*):([0-9]+):[^"]*"([^"]*)".*/\1:\2:\3/')
    nfiles=$(echo "$files" | wc -l)
    if [ -z "$bad" ]; then
        echo "ok $n - $folder/ includes only: ${allowed[$folder]}" \
            "($nfiles files, $count quoted includes)"
    else
        echo "not ok $n - $folder/ includes only: ${allowed[$folder]}"
        printf '%s' "$bad" | sed 's/^/#   /'
        failed=1
    fi
done
exit $failed
