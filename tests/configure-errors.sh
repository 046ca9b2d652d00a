#!/bin/sh
# configure-errors.sh - configure names the Debian package of each missing library
#
# For each library configure looks for, hide it from pkg-config (a wrapper
# that fails for that module and passes everything else to the real
# pkg-config) and check that configure stops with the package to install.
# configure runs from a scratch copy, so the tree's own build is untouched.
set -u
srcdir=${top_srcdir:?top_srcdir not set}
real=$(command -v pkg-config) || { echo "pkg-config not found"; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/src/lib"
cp "$srcdir/configure" "$tmp/src/"
cp -R "$srcdir/build-aux" "$tmp/src/"
cp "$srcdir/lib/milter_proto.h" "$tmp/src/lib/"
cat >"$tmp/pkg-config" <<EOS
#!/bin/sh
# Fails for module \$HIDE_MODULE, like a pkg-config without its .pc file.
for a in "\$@"; do
    for w in \$a; do
        if [ "\$w" = "\$HIDE_MODULE" ]; then
            echo "Package \$HIDE_MODULE was not found in the pkg-config search path" >&2
            exit 1
        fi
    done
done
exec "$real" "\$@"
EOS
chmod +x "$tmp/pkg-config"

failed=0
# module package
for pair in glib-2.0:libglib2.0-dev gio-2.0:libglib2.0-dev cairo:libcairo2-dev \
    librrd:librrd-dev check:check; do
    module=${pair%%:*}
    package=${pair#*:}
    mkdir -p "$tmp/build-$module"
    out=$(cd "$tmp/build-$module" && HIDE_MODULE=$module PKG_CONFIG="$tmp/pkg-config" \
        "$tmp/src/configure" 2>&1)
    status=$?
    if [ "$status" = 0 ]; then
        echo "FAIL: configure succeeded without $module"
        failed=1
    elif ! printf '%s\n' "$out" | grep -q "(install the Debian package $package)"; then
        echo "FAIL: without $module, configure did not name $package; it said:"
        printf '%s\n' "$out" | tail -n 3
        failed=1
    else
        echo "ok: without $module: $(printf '%s\n' "$out" | grep 'configure: error' | cut -c1-120)"
    fi
done
exit $failed
