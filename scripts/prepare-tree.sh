#!/bin/bash
# Lay out the QEMU source tree that qemu-hspt builds from:
#
#   build/base/   pristine base: Debian's qemu source package, extracted with
#                 dpkg-source -x (Debian's own patch series applied)
#   build/src/    build/base + patches/series applied + overlay files linked
#
# Usage: prepare-tree.sh REPO_DIR BUILD_DIR CACHE_DIR [PRISTINE_SRC_DIR]
#
# Only files whose content changes are rewritten, so ninja rebuilds just
# what a patch or overlay change touches.
set -euo pipefail

repo=$1 build=$2 cache=$3 given_src=${4:-}
. "$repo/scripts/qemu-base.conf"

base=$build/base
src=$build/src
state=$build/tree-state
mkdir -p "$build" "$state"

die() { echo "prepare-tree: $*" >&2; exit 1; }

verify_sha256() {
    local file=$1 want=$2 got
    got=$(sha256sum "$file" | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "checksum mismatch for $file: got $got, want $want"
}

fetch_base() {
    local dl=$cache/src
    mkdir -p "$dl"
    if [ ! -f "$dl/$QEMU_DSC" ] || [ ! -f "$dl/$QEMU_ORIG" ] ||
       [ ! -f "$dl/$QEMU_DEBIAN" ]; then
        echo "prepare-tree: fetching $QEMU_SRC_PACKAGE $QEMU_DEB_VERSION with apt-get source"
        (cd "$dl" && apt-get source -q --download-only \
            "$QEMU_SRC_PACKAGE=$QEMU_DEB_VERSION") ||
            die "apt-get source failed (is a trixie deb-src entry configured? run scripts/install-deps.sh)"
    fi
    verify_sha256 "$dl/$QEMU_DSC" "$QEMU_DSC_SHA256"
    verify_sha256 "$dl/$QEMU_ORIG" "$QEMU_ORIG_SHA256"
    verify_sha256 "$dl/$QEMU_DEBIAN" "$QEMU_DEBIAN_SHA256"
    rm -rf "$base.tmp"
    dpkg-source -q -x "$dl/$QEMU_DSC" "$base.tmp" > "$state/dpkg-source.log" 2>&1 ||
        die "dpkg-source -x failed, see $state/dpkg-source.log"
    mv "$base.tmp" "$base"
}

# 1. Pristine base.
if [ -n "$given_src" ]; then
    [ -f "$given_src/VERSION" ] || die "--qemu-src=$given_src is not a QEMU tree"
    [ "$(cat "$given_src/VERSION")" = "$QEMU_UPSTREAM_VERSION" ] ||
        die "--qemu-src=$given_src is QEMU $(cat "$given_src/VERSION"), want $QEMU_UPSTREAM_VERSION"
    if [ "$(readlink -f "$base" 2>/dev/null)" != "$(readlink -f "$given_src")" ]; then
        rm -rf "$base"
        ln -s "$(readlink -f "$given_src")" "$base"
    fi
elif [ -L "$base" ] || [ ! -f "$base/VERSION" ]; then
    rm -rf "$base"
    fetch_base
fi

# 2. Working tree: a copy of the base, made once.
if [ ! -f "$src/VERSION" ] ||
   [ "$(cat "$state/base-id" 2>/dev/null)" != "$(readlink -f "$base")" ]; then
    echo "prepare-tree: copying the base into $src"
    rm -rf "$src" "$state"/*
    cp -a "$base/." "$src/"
    readlink -f "$base" > "$state/base-id"
    : > "$state/patched-files"
    : > "$state/overlay-files"
fi

# 3. Patches. Rebuild every file touched by the old or the new series from
#    the pristine base in a staging tree, apply the series there, then copy
#    back only what differs.
series=$repo/patches/series
new_files=$state/patched-files.new
: > "$new_files"
patches=()
if [ -f "$series" ]; then
    while read -r p _; do
        case "$p" in ''|'#'*) continue ;; esac
        [ -f "$repo/patches/$p" ] || die "patches/series names $p, which does not exist"
        patches+=("$p")
        sed -n 's|^+++ b/\([^\t ]*\).*|\1|p; s|^--- a/\([^\t ]*\).*|\1|p' \
            "$repo/patches/$p" >> "$new_files"
    done < "$series"
fi
sort -u -o "$new_files" "$new_files"

series_id=$( (cat "$series" 2>/dev/null; for p in "${patches[@]}"; do
                cat "$repo/patches/$p"; done) | sha256sum | cut -d' ' -f1)
if [ "$series_id" != "$(cat "$state/series-id" 2>/dev/null)" ]; then
    stage=$build/patch-stage
    rm -rf "$stage"
    mkdir -p "$stage"
    sort -u "$state/patched-files" "$new_files" > "$state/touched"
    while read -r f; do
        if [ -e "$base/$f" ]; then
            mkdir -p "$stage/$(dirname "$f")"
            cp -p "$base/$f" "$stage/$f"
        fi
    done < "$state/touched"
    for p in "${patches[@]}"; do
        patch -s -p1 -N -d "$stage" --no-backup-if-mismatch \
            < "$repo/patches/$p" > "$state/patch.log" 2>&1 ||
            { cat "$state/patch.log" >&2; die "patch $p does not apply to QEMU $QEMU_UPSTREAM_VERSION"; }
    done
    while read -r f; do
        if [ -e "$stage/$f" ]; then
            if ! cmp -s "$stage/$f" "$src/$f"; then
                mkdir -p "$src/$(dirname "$f")"
                cp "$stage/$f" "$src/$f"
            fi
        else
            rm -f "$src/$f"
        fi
    done < "$state/touched"
    mv "$new_files" "$state/patched-files"
    echo "$series_id" > "$state/series-id"
    rm -rf "$stage"
    echo "prepare-tree: applied ${#patches[@]} patch(es)"
fi

# 4. Overlay: every file of ours under a QEMU top-level directory is linked
#    into the tree. It must be new: an upstream file is changed by a patch,
#    never replaced.
overlay_dirs=(accel tcg target hw system include qapi monitor util tests docs)
new_overlay=$state/overlay-files.new
(cd "$repo" && for d in "${overlay_dirs[@]}"; do
    [ -d "$d" ] && find "$d" -type f ! -name '*~' ! -name '.*'
done) | sort > "$new_overlay"
while read -r f; do
    if [ -e "$base/$f" ]; then
        die "overlay file $f shadows an upstream file; change it with a patch instead"
    fi
    if [ "$(readlink "$src/$f" 2>/dev/null)" != "$repo/$f" ]; then
        mkdir -p "$src/$(dirname "$f")"
        ln -sfn "$repo/$f" "$src/$f"
    fi
done < "$new_overlay"
comm -23 "$state/overlay-files" "$new_overlay" | while read -r f; do
    [ -L "$src/$f" ] && rm -f "$src/$f"
done
mv "$new_overlay" "$state/overlay-files"
