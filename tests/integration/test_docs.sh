#!/bin/sh
# tests/integration/test_docs.sh: checks that the documentation follows
# conf/options.def, the one list of options. For every option: its row in
# docs/configuration.md's options table (flag, env variable, type, default,
# reloadable), its commented default in mongocache.conf.sample, and its name
# in README.md's configuration section. Also: no option documented in either
# file that options.def does not have. Prints TAP; finds the tree through
# $abs_top_srcdir (set by `make check`; defaults to the script's tree).

srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
def=$srcdir/conf/options.def
doc=$srcdir/docs/configuration.md
sample=$srcdir/mongocache.conf.sample
readme=$srcdir/README.md

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_docs.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

n=0
failed=0
ok() {
    # ok STATUS DESCRIPTION [DIAGNOSTIC...]
    n=$((n + 1))
    st=$1
    desc=$2
    shift 2
    if [ "$st" -eq 0 ]; then
        echo "ok $n - $desc"
    else
        echo "not ok $n - $desc"
        failed=1
        for line in "$@"; do
            echo "#   $line"
        done
    fi
}

for f in "$def" "$doc" "$sample"; do
    if [ ! -r "$f" ]; then
        echo "Bail out! cannot read $f"
        exit 1
    fi
done

# One line per option, fields separated by \037: name type default env reloadable.
sep=$(printf '\037') # a separator 'read' does not merge
sed -n "s/^CONF_OPT(\\([a-z0-9_]*\\), *\\([A-Z]*\\), *\"\\([^\"]*\\)\", *\"\\([A-Z0-9_]*\\)\", *\\([01]\\),.*/\\1$sep\\2$sep\\3$sep\\4$sep\\5/p" \
    "$def" >"$tmp/opts"
cut -d "$sep" -f1 "$tmp/opts" >"$tmp/names"
n_opts=$(wc -l <"$tmp/opts" | tr -d ' ')
n_lines=$(grep -c '^CONF_OPT(' "$def")

# The options table: rows of the "## Options" section.
awk '/^## /{ in_opts = ($0 == "## Options") } in_opts && /^\| `/' "$doc" >"$tmp/doc_rows"
# README.md's configuration section: from a heading naming configuration to
# the next heading of the same or a higher level.
if [ -r "$readme" ]; then
    awk '
        /^#+ / {
            level = index($0, " ") - 1
            if (in_sec && level <= sec_level) { in_sec = 0 }
            if (!in_sec && !done && tolower($0) ~ /config/) { in_sec = 1; sec_level = level; done = 1; next }
        }
        in_sec { print }
    ' "$readme" >"$tmp/readme_sec"
else
    : >"$tmp/readme_sec"
fi

echo "1..$((n_opts * 3 + 4))"

[ "$n_opts" -eq "$n_lines" ] && [ "$n_opts" -gt 0 ]
ok $? "every CONF_OPT line of options.def is understood ($n_opts options)" \
    "parsed $n_opts of $n_lines CONF_OPT lines; keep each on one line up to 'reloadable,'"

while IFS="$sep" read -r name type default env reload; do
    flag=--$(echo "$name" | tr '_' '-')
    if [ -n "$default" ]; then shown=$default; else shown='""'; fi
    if [ "$reload" = 1 ]; then rel=yes; else rel=no; fi

    # docs/configuration.md: the option's row holds its flag, env, type, default, reloadable.
    row=$(grep -F "| \`$name\` |" "$tmp/doc_rows" | head -n 1)
    missing=""
    if [ -z "$row" ]; then
        missing="the row | \`$name\` | in the Options table"
    else
        for want in "\`$flag\`" "\`$env\`" "| $type |" "| \`$shown\` |" "| $rel |"; do
            case $row in
            *"$want"*) ;;
            *) missing="$missing $want" ;;
            esac
        done
    fi
    [ -z "$missing" ]
    ok $? "docs/configuration.md documents $name ($flag, $env, default $shown)" \
        "missing: $missing" "row: $row"

    # mongocache.conf.sample: "# name = default" (or uncommented).
    grep -qxE "#? ?$name = .*" "$sample" &&
        grep -E "^#? ?$name = " "$sample" | grep -qxF -e "# $name = $shown" -e "$name = $shown"
    ok $? "mongocache.conf.sample shows $name = $shown" \
        "expected a line \"# $name = $shown\" in mongocache.conf.sample"

    # README.md's configuration section names the option.
    grep -qw -e "$name" "$tmp/readme_sec"
    ok $? "README.md's configuration section mentions $name" \
        "README.md needs a section whose heading names configuration, mentioning $name"
done <"$tmp/opts"

# Nothing documented that options.def does not have.
extra=""
for name in $(sed -n 's/^| `\([a-z0-9_]*\)` |.*/\1/p' "$tmp/doc_rows"); do
    grep -qxF "$name" "$tmp/names" || extra="$extra $name"
done
[ -z "$extra" ]
ok $? "docs/configuration.md documents no option missing from options.def" "unknown:$extra"

extra=""
for name in $(sed -n 's/^#\{0,1\} \{0,1\}\([a-z0-9_]*\) = .*/\1/p' "$sample"); do
    grep -qxF "$name" "$tmp/names" || extra="$extra $name"
done
[ -z "$extra" ]
ok $? "mongocache.conf.sample sets no option missing from options.def" "unknown:$extra"

rows=$(wc -l <"$tmp/doc_rows" | tr -d ' ')
[ "$rows" -eq "$n_opts" ]
ok $? "docs/configuration.md's Options table has one row per option" \
    "$rows rows for $n_opts options"

exit $failed
