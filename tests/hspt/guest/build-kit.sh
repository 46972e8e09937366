#!/bin/bash
# Build the ARM guest kit from Debian armhf packages:
#   OUT/vmlinuz-<kernel-id>   kernels for -M virt -cpu cortex-a15
#   OUT/initrd.img            busybox initramfs with the workloads
#   OUT/kernels.txt           kernel-id, file, package and version
#
# Usage: build-kit.sh REPO OUT CACHE
set -euo pipefail

repo=$1 out=$2 cache=$3
kit=$repo/tests/hspt/guest
debs=$cache/debs
mkdir -p "$out" "$debs"

die() { echo "build-kit: $*" >&2; exit 1; }

# Kernels, chosen because they drive the MMU differently:
#   lpae-6.1   LPAE, ASIDs in TTBR0
#   armmp-6.1  short descriptors, CONTEXTIDR ASIDs, DACR switching around
#              user copies (CONFIG_CPU_SW_DOMAIN_PAN)
#   lpae-6.12  LPAE with CONFIG_CPU_TTBR0_PAN (TTBCR written around user copies)
kernels=(
    "lpae-6.1 linux-image-armmp-lpae bookworm"
    "armmp-6.1 linux-image-armmp bookworm"
    "lpae-6.12 linux-image-armmp-lpae bookworm-backports"
)
# Userland: busybox, glibc, and real programs with their libraries.
user_pkgs=(busybox-static libc6 xz-utils liblzma5 sqlite3 libsqlite3-0
           libreadline8 libtinfo6 zlib1g)

# Print the cached .deb of package $1, fetching it if it is not cached.
fetch_deb() {
    local pkg=$1 f
    f=$(ls "$debs/${pkg}"_*_armhf.deb 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$f" ]; then
        (cd "$debs" && apt-get download -q "$pkg:armhf" >&2) ||
            die "cannot download $pkg:armhf (run scripts/install-deps.sh)"
        f=$(ls "$debs/${pkg}"_*_armhf.deb | sort -V | tail -n 1)
    fi
    echo "$f"
}

# Resolve a kernel metapackage in a suite to the image package it names.
resolve_kernel() {
    local meta=$1 suite=$2 name
    name=$(apt-cache depends "$meta:armhf/$suite" 2>/dev/null |
           sed -n 's/^ *Depends: \(linux-image-[^:]*\):armhf$/\1/p' | head -n 1)
    if [ -z "$name" ]; then
        # Offline: fall back to what the cache already holds.
        local flavour=${meta#linux-image-} f
        case $suite in
        bookworm-backports) f=$(ls "$debs"/linux-image-6.1[2-9]*-"$flavour"_*_armhf.deb 2>/dev/null | tail -n 1) ;;
        *) f=$(ls "$debs"/linux-image-6.1.0-*-"$flavour"_*_armhf.deb 2>/dev/null | tail -n 1) ;;
        esac
        [ -n "$f" ] || die "cannot resolve $meta in $suite and nothing is cached"
        name=$(dpkg-deb -f "$f" Package)
    fi
    echo "$name"
}

# Everything the kit is made of; the kit is rebuilt when this changes.
inputs_id() {
    { cat "$kit"/build-kit.sh "$kit"/init "$kit"/scripts/* "$kit"/workloads/*
      printf '%s\n' "$@"; } | sha256sum | cut -d' ' -f1
}

kernel_debs=()
kernel_lines=()
for k in "${kernels[@]}"; do
    read -r id meta suite <<< "$k"
    pkg=$(resolve_kernel "$meta" "$suite")
    deb=$(fetch_deb "$pkg")
    kernel_debs+=("$deb")
    kernel_lines+=("$id $pkg $(dpkg-deb -f "$deb" Version)")
done
user_debs=()
for p in "${user_pkgs[@]}"; do
    user_debs+=("$(fetch_deb "$p")")
done

id=$(inputs_id "${kernel_debs[@]}" "${user_debs[@]}")
if [ "$(cat "$out/.kit-id" 2>/dev/null)" = "$id" ]; then
    exit 0
fi
echo "build-kit: building the guest kit in $out"

# Kernels: only the image is needed; every driver the tests use (PL011,
# PSCI, devtmpfs, /dev/mem) is built in, so no modules go into the initramfs.
: > "$out/kernels.txt"
for i in "${!kernel_debs[@]}"; do
    read -r kid pkg ver <<< "${kernel_lines[$i]}"
    tmp=$(mktemp -d)
    dpkg-deb --fsys-tarfile "${kernel_debs[$i]}" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
    cp "$tmp"/boot/vmlinuz-* "$out/vmlinuz-$kid"
    rm -rf "$tmp"
    echo "$kid vmlinuz-$kid $pkg $ver" >> "$out/kernels.txt"
done

# Root filesystem.
root=$out/rootfs
rm -rf "$root"
mkdir -p "$root"
for d in "${user_debs[@]}"; do
    dpkg-deb -x "$d" "$root"
done
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian,bug,menu} "$root"/etc/init.d
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,usr/lib/hspt}

arm-linux-gnueabihf-gcc -O2 -g0 -Wall -Wextra -Werror -static -pthread \
    -o "$root/usr/bin/hspt-wl" "$kit"/workloads/*.c
cp "$kit/init" "$root/init"
cp "$kit"/scripts/* "$root/usr/lib/hspt/"
chmod 755 "$root/init" "$root"/usr/lib/hspt/*

# Every shared library the real programs need must be in the image.
for exe in "$root/usr/bin/xz" "$root/usr/bin/sqlite3"; do
    for lib in $(arm-linux-gnueabihf-readelf -d "$exe" |
                 sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
        [ -e "$root/lib/arm-linux-gnueabihf/$lib" ] ||
        [ -e "$root/usr/lib/arm-linux-gnueabihf/$lib" ] ||
            die "$(basename "$exe") needs $lib, which no package in user_pkgs provides"
    done
done

(cd "$root" && find . -print0 | sort -z |
    cpio --null -o -H newc --owner=0:0 --quiet) | gzip -6 -n > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "$id" > "$out/.kit-id"
echo "build-kit: $(wc -l < "$out/kernels.txt") kernels, initrd $(du -h "$out/initrd.img" | cut -f1)"
