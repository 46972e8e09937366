#!/bin/bash
# Install (with apt) everything qemu-hspt needs to build, test and benchmark.
#
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --check  exit 1 if anything is missing, install nothing
#
# Apt sources for bookworm-backports (meson >= 1.5, python3-pycotap) and for
# trixie deb-src (the pinned QEMU base) are derived from the machine's
# existing Debian entries, so no mirror host name is written anywhere.
set -euo pipefail

build_pkgs=(
    build-essential ninja-build pkg-config git
    libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev
    # -sandbox, as in Debian's qemu-system-arm
    libseccomp-dev
    flex bison python3 python3-venv dpkg-dev
    gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
    ccache cpio xz-utils gnuplot-nox
    # gcore, for the check that shadow pages stay out of core dumps
    gdb
    # Firmware blobs the +ds source package strips, needed by QEMU's own
    # tests (npcm7xx_bootrom.bin, efi-virtio.rom for virt's default NIC).
    qemu-system-data ipxe-qemu
)
backports_pkgs=(meson python3-pycotap)
min_meson=1.5

sources_file=/etc/apt/sources.list.d/qemu-hspt.sources

missing_pkgs() {
    local p
    for p in "${build_pkgs[@]}" "${backports_pkgs[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
            echo "$p"
        fi
    done
    if command -v meson >/dev/null &&
       ! dpkg --compare-versions "$(meson --version)" ge "$min_meson"; then
        echo meson
    fi
    if ! dpkg --print-foreign-architectures | grep -qx armhf; then
        echo "armhf-architecture"
    fi
    [ -f "$sources_file" ] || echo "apt-sources"
}

# Print the URI of the first configured Debian entry whose suite matches $1
# (deb822 .sources files and one-line sources.list are both understood).
debian_uri_for_suite() {
    local suite=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        [ "$f" = "$sources_file" ] && continue
        awk -v want="$suite" '
            /^[ \t]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
            /^URIs:/   { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == want) ok = 1 }
            END        { if (uri != "" && ok) print uri }' "$f" | head -n 1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v want="$suite" '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == want) { print $i; exit } }' "$f"
    done
}

write_sources() {
    local main sec
    main=$(debian_uri_for_suite bookworm | head -n 1)
    sec=$(debian_uri_for_suite bookworm-security | head -n 1)
    if [ -z "$main" ]; then
        echo "install-deps: no Debian bookworm entry found in the apt configuration" >&2
        exit 1
    fi
    {
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\n' "$main"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n'
        printf 'Types: deb-src\nURIs: %s\nSuites: trixie trixie-updates\nComponents: main\n' "$main"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$sec" ]; then
            printf '\nTypes: deb-src\nURIs: %s\nSuites: trixie-security\nComponents: main\n' "$sec"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } > "$sources_file.tmp"
    mv "$sources_file.tmp" "$sources_file"
}

if [ "${1:-}" = "--check" ]; then
    [ -z "$(missing_pkgs)" ]
    exit
fi

if [ -z "$(missing_pkgs)" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then
        exec sudo "$0" "$@"
    fi
    echo "install-deps: run as root (missing: $(missing_pkgs | tr '\n' ' '))" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
write_sources
dpkg --add-architecture armhf
# A size mismatch on one foreign-architecture index must not stop us:
# every package we need comes from bookworm main or bookworm-backports.
apt-get update -q || echo "install-deps: apt-get update reported errors; continuing" >&2
apt-get install -y -q --no-install-recommends "${build_pkgs[@]}"
apt-get install -y -q --no-install-recommends -t bookworm-backports "${backports_pkgs[@]}"

if [ -n "$(missing_pkgs)" ]; then
    echo "install-deps: still missing: $(missing_pkgs | tr '\n' ' ')" >&2
    exit 1
fi
