#!/bin/bash
# Write patches/NAME from edits made directly in build/src.
#
#   scripts/make-patch.sh NAME.patch "Subject line" FILE... < description
#
# FILEs are paths inside the QEMU tree; each is diffed against the pristine
# base (build/base). The description (stdin) explains why the hook exists.
# Add NAME.patch to patches/series yourself, in the right place.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 subject=$2
shift 2
[ $# -gt 0 ] || { echo "usage: $0 NAME.patch SUBJECT FILE... < description" >&2; exit 1; }
{
    echo "From: qemu-hspt"
    echo "Subject: [PATCH] $subject"
    echo
    cat
    echo
    echo "---"
    for f in "$@"; do
        diff -u --label "a/$f" --label "b/$f" "build/base/$f" "build/src/$f" || [ $? = 1 ]
    done
} > "patches/$name"
echo "wrote patches/$name"
