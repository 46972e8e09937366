#!/usr/bin/python3
"""`make check` for qemu-hspt: every test suite, one summary line.

Stages (all by default; pick with --only STAGE[,STAGE]):
  cli      command-line behaviour of build/qemu-system-arm (version, options)
  unit     our unit tests and hspt-boot-test, a qtest (meson suite "hspt")
  qtest    QEMU's arm qtests (meson suite "qtest-arm")
  tcg      QEMU's check-tcg arm-softmmu system tests
  bare     bare-metal TLB invalidation test (tests/hspt/baremetal), every
           organisation and hspt=off; big-endian accesses
  user     static workloads under build/qemu-arm against the expected checksums
  guest    every workload on every guest kernel against the expected checksums
  state    QEMU's own state machinery with hspt=on: live migration,
           snapshots, gdbstub watchpoints

Ends with "N passed, N failed" and exits 1 if anything failed.
"""

import argparse
import concurrent.futures
import contextlib
import csv
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hsptguest  # noqa: E402

QEMU_BUILD = os.path.join(hsptguest.BUILD, "qemu")
LOGDIR = os.path.join(hsptguest.BUILD, "check")
EXPECTED = hsptguest.EXPECTED
BENCH = os.path.join(hsptguest.REPO, "tests", "hspt", "bench.py")
STAGES = ["cli", "unit", "qtest", "tcg", "bare", "user", "guest", "state"]

# The reference kernel whose hspt=off results define expected.txt.
REFERENCE_KERNEL = "lpae-6.1"
# Workloads that matter for -smp 4 (MTTCG): shared memory and processes.
SMP_WORKLOADS = ["seqrw", "forkstorm", "pipering", "mmapchurn", "cow", "smc",
                 "atomics", "kaddr", "pagecache", "shpipe"]
# Workloads for the guest setups off the default one (RAM, CPU model).
SETUP_WORKLOADS = ["seqrw", "chase", "forkstorm", "mmapchurn", "cow", "smc",
                   "unaligned", "atomics", "pagecache", "shpipe"]


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def add(self, ok, name, detail=""):
        if ok:
            self.passed += 1
            print("PASS: " + name, flush=True)
        else:
            self.failed.append(name)
            print("FAIL: " + name + (" -- " + detail if detail else ""),
                  flush=True)


def run(cmd, log_name, cwd=None, timeout=3600, env=None):
    """Run CMD with output to build/check/LOG_NAME; return (rc, output).

    ENV, if given, is added to this process's environment for CMD."""
    path = os.path.join(LOGDIR, log_name)
    with open(path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            rc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=timeout,
                                env=dict(os.environ, **(env or {}))).returncode
        except subprocess.TimeoutExpired:
            rc = -1
            log.write("\n*** timed out after %d s\n" % timeout)
    with open(path, errors="replace") as log:
        return rc, log.read()


def stage_cli(t):
    qemu = hsptguest.QEMU_SYSTEM
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True)
    t.add(out.returncode == 0 and "qemu-hspt" in out.stdout
          and "10.0.13" in out.stdout, "cli: --version names the fork",
          out.stdout.strip())
    out = subprocess.run([qemu, "-accel", "tcg,help"], capture_output=True, text=True)
    t.add(out.returncode == 0 and re.search(r"^\s*hspt=<bool>\s+- \S", out.stdout, re.M),
          "cli: -accel tcg,help lists hspt with a description", out.stdout.strip())

    def refuse(args, want, name):
        p = subprocess.run([qemu, "-display", "none", "-nic", "none"] + args,
                           capture_output=True, text=True, timeout=60)
        t.add(p.returncode == 1 and want in p.stderr and "core dumped" not in p.stderr,
              name, "rc=%d stderr=%r" % (p.returncode, p.stderr))

    refuse(["-M", "raspi2b", "-accel", "tcg,hspt=on"],
           "machine 'raspi2b' uses 1 KiB pages", "cli: hspt=on on raspi2b names the page size")
    refuse(["-M", "virt", "-icount", "shift=1", "-accel", "tcg,hspt=on"],
           "cannot be combined with -icount", "cli: hspt=on with icount is refused")
    refuse(["-M", "virt", "-accel", "tcg,hspt=maybe"],
           "'hspt'", "cli: hspt=<bad value> is a clean error")
    t.add(re.search(r"^\s*hspt-spt=<string>\s+- \S", out.stdout, re.M)
          and re.search(r"^\s*hspt-groups=<uint32>\s+- \S", out.stdout, re.M)
          and re.search(r"^\s*hspt-window=<uint32>\s+- \S", out.stdout, re.M)
          and re.search(r"^\s*hspt-nursery=<uint32>\s+- \S", out.stdout, re.M),
          "cli: -accel tcg,help lists hspt-spt, hspt-groups, hspt-window and "
          "hspt-nursery",
          out.stdout.strip())
    refuse(["-M", "virt", "-accel", "tcg,hspt=on,hspt-spt=lru"],
           "Invalid parameter value for 'hspt-spt': 'lru'",
           "cli: hspt-spt=<bad value> is a clean error")
    refuse(["-M", "virt", "-accel", "tcg,hspt=on,hspt-groups=0"],
           "'hspt-groups' expects a value between 1 and 256",
           "cli: hspt-groups=0 is a clean error")
    refuse(["-M", "virt", "-accel", "tcg,hspt=on,hspt-window=1025"],
           "'hspt-window' expects a value between 0 and 1024",
           "cli: hspt-window=1025 is a clean error")
    refuse(["-M", "virt", "-accel", "tcg,hspt=on,hspt-nursery=1000001"],
           "'hspt-nursery' expects a value between 0 and 1000000",
           "cli: hspt-nursery=1000001 is a clean error")

    def signal_idle_qemu(accel, sig, look=lambda pid: None):
        """Start QEMU stopped (-S), call LOOK(pid), then send SIG.

        Returns QEMU's exit status and what LOOK returned."""
        p = subprocess.Popen([qemu, "-M", "virt", "-display", "none", "-nic", "none",
                              "-S", "-accel", accel],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(2)
        seen = look(p.pid)
        p.send_signal(sig)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        return rc, seen

    # A SIGSEGV that is not a shadow miss must keep its default action.
    rc, _ = signal_idle_qemu("tcg,hspt=on", signal.SIGSEGV)
    t.add(rc == -signal.SIGSEGV, "cli: hspt=on: a foreign SIGSEGV still kills QEMU",
          "exit status %d" % rc)

    # Shadow misses are SIGSEGVs; Linux wakes a signalfd's pollers for any
    # signal, so with hspt=on the main loop takes its signals from a
    # sigwait() thread instead. A process-directed SIGBUS must still reach
    # QEMU's handler (which re-raises it: QEMU dies of SIGBUS).
    def signalfds(pid):
        fd_dir = "/proc/%d/fd" % pid
        n = 0
        for fd in os.listdir(fd_dir):
            try:
                n += os.readlink(os.path.join(fd_dir, fd)) == "anon_inode:[signalfd]"
            except OSError:
                pass
        return n

    rc_on, n_on = signal_idle_qemu("tcg,hspt=on", signal.SIGBUS, signalfds)
    rc_off, n_off = signal_idle_qemu("tcg", signal.SIGBUS, signalfds)
    t.add(n_on == 0 and n_off == 1,
          "cli: hspt=on: the main loop polls no signalfd (hspt off: one)",
          "signalfds: hspt=on %d, off %d" % (n_on, n_off))
    t.add(rc_on == -signal.SIGBUS and rc_off == -signal.SIGBUS,
          "cli: hspt=on: a SIGBUS still reaches the main loop's handler",
          "exit status: hspt=on %d, off %d" % (rc_on, rc_off))

    def info_hspt(accel):
        p = subprocess.run([qemu, "-M", "virt", "-display", "none", "-nic", "none",
                            "-S", "-monitor", "stdio", "-accel", accel],
                           input="info hspt\nquit\n", capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout

    # -mem-path makes a file backend that no option shares: the warning
    # must say how to give shadow pages guest RAM they can map.
    with tempfile.TemporaryDirectory(prefix="hspt-check-") as d:
        p = subprocess.run([qemu, "-M", "virt", "-m", "64M", "-display", "none",
                            "-nic", "none", "-S", "-monitor", "stdio",
                            "-mem-path", d, "-accel", "tcg,hspt=on"],
                           input="quit\n", capture_output=True, text=True,
                           timeout=60)
    t.add(p.returncode == 0 and
          "memory backend 'mach-virt.ram' stays on softmmu" in p.stderr and
          "-mem-path maps its file private; for shadow pages use -object "
          "memory-backend-file,id=ID,mem-path=FILE,size=SIZE,share=on "
          "-machine memory-backend=ID" in p.stderr,
          "cli: hspt=on with -mem-path says how to shadow-map guest RAM",
          "rc=%d stderr=%r" % (p.returncode, p.stderr))

    rc, out = info_hspt("tcg,hspt=on,hspt-spt=private")
    t.add(rc == 0 and "HSPT on: organisation private, 256 space(s) per vCPU" in out
          and re.search(r"^fills: 0 pages", out, re.M)
          and re.search(r"^vCPU 0: space 0 current", out, re.M),
          "cli: info hspt shows the configuration and counters", out)
    rc, out = info_hspt("tcg")
    t.add(rc == 0 and "HSPT off" in out, "cli: info hspt with hspt off says so", out)


def meson_suite(t, suite, label, targets, timeout):
    if targets:
        rc, out = run(["ninja", "-C", QEMU_BUILD] + targets, label + "-build.log",
                      timeout=timeout)
        if rc != 0:
            t.add(False, label + ": build", "see build/check/%s-build.log" % label)
            return
    rc, out = run(["meson", "test", "-C", QEMU_BUILD, "--no-rebuild",
                   "--suite", suite, "--print-errorlogs", "--logbase", label,
                   # Some arm qtests take minutes on 2 cores; a loaded CI
                   # machine must not turn that into a timeout.
                   "--timeout-multiplier", "3",
                   "--num-processes", str(os.cpu_count() or 2)],
                  label + ".log", timeout=timeout)
    seen = 0
    jlog = os.path.join(QEMU_BUILD, "meson-logs", label + ".json")
    with open(jlog) if os.path.exists(jlog) else open(os.devnull) as f:
        for line in f:
            test = json.loads(line)
            seen += 1
            name, status = test["name"], test["result"]
            if status == "SKIP":
                print("SKIP: %s: %s" % (label, name))
                continue
            t.add(status in ("OK", "EXPECTEDFAIL"), "%s: %s" % (label, name),
                  "%s, see build/check/%s.log" % (status, label))
    if seen == 0 or (rc != 0 and not t.failed):
        t.add(False, label + ": meson test", "rc=%d, see build/check/%s.log" % (rc, label))


def qtest_targets():
    """The executables the arm qtests need (meson's introspection)."""
    out = subprocess.run(["meson", "introspect", "--tests", QEMU_BUILD],
                         capture_output=True, text=True, check=True).stdout
    exes = set()
    for test in json.loads(out):
        if any(s.split(":")[-1] == "qtest-arm" for s in test.get("suite", [])):
            exes.add(os.path.relpath(test["cmd"][0], QEMU_BUILD))
    return sorted(exes)


def stage_unit(t):
    meson_suite(t, "hspt", "unit", ["tests/hspt/test-hspt-config",
                                    "tests/hspt/test-hspt-bits",
                                    "tests/hspt/hspt-boot-test",
                                    "qemu-system-arm"], 900)


def stage_qtest(t):
    meson_suite(t, "qtest-arm", "qtest", qtest_targets() + ["qemu-system-arm"], 2400)


def stage_tcg(t):
    rc, out = run(["ninja", "-C", QEMU_BUILD, "test-plugins"], "tcg-plugins.log")
    if rc != 0:
        t.add(False, "tcg: build test plugins", "see build/check/tcg-plugins.log")
    rc, out = run(["make", "-C", QEMU_BUILD, "-k", "run-tcg-tests-arm-softmmu"],
                  "tcg.log", timeout=2400)
    ran = re.findall(r"^\s*TEST\s+(.+?) on arm\s*$", out, re.M)
    failed = set(re.findall(r"\*\*\* \[\S*Makefile\S*:\d+: (run-\S+)\] Error", out))
    for name in ran:
        target = "run-" + name.split()[0]
        bad = any(f == target or f.startswith(target + "-") for f in failed)
        t.add(not bad, "tcg: " + name, "see build/check/tcg.log")
    if not ran or (rc != 0 and not failed):
        t.add(False, "tcg: make run-tcg-tests-arm-softmmu",
              "rc=%d, see build/check/tcg.log" % rc)

    # The same system tests with hspt=on, through a wrapper
    # binary (the tests' Makefiles stay untouched). icount variants are
    # left out (HSPT refuses icount); plugins: check_plugin_hwaddr.
    wrapper = os.path.join(LOGDIR, "qemu-system-arm-hspt")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nexec %s -accel tcg,hspt=on "$@"\n'
                % hsptguest.QEMU_SYSTEM)
    os.chmod(wrapper, 0o755)
    tdir = os.path.join(QEMU_BUILD, "tests", "tcg", "arm-softmmu")
    for name in ["hello", "interrupt", "memory"]:
        rc, out = run(["make", "-C", tdir, "SRC_PATH=" + os.path.join(hsptguest.BUILD, "src"),
                       "QEMU=" + wrapper, "run-" + name],
                      "tcg-hspt-%s.log" % name, timeout=600,
                      env={"QEMU_HSPT_STATS": "1"})
        fills = first_int(r"^fills: (\d+) pages", out)
        t.add(rc == 0 and fills > 0,
              "tcg: %s with hspt=on (direct path used)" % name,
              "rc=%d fills=%s, see build/check/tcg-hspt-%s.log" % (rc, fills, name))
    check_plugin_variants(t, tdir, wrapper)
    check_plugin_hwaddr(t, tdir)


def check_plugin_variants(t, tdir, wrapper):
    """check-tcg's plugin variants (every test plugin on hello, interrupt
    and memory) with hspt=on: each passes, uses the direct path, and for
    hello and memory the plugin prints what it printed with hspt=off in
    the run of the suite just before (interrupt's counts could follow
    host timing; they have matched so far)."""
    plugin_dir = os.path.join(QEMU_BUILD, "tests", "tcg", "plugins")
    plugins = sorted(f[len("lib"):-len(".so")] for f in os.listdir(plugin_dir)
                     if f.startswith("lib") and f.endswith(".so"))
    for name in ["hello", "interrupt", "memory"]:
        for plugin in plugins:
            variant = "%s-with-lib%s.so" % (name, plugin)
            pout = os.path.join(tdir, variant + ".pout")
            off = read_text(pout)
            if off is not None:
                os.unlink(pout)     # so that a run that writes none fails
            rc, out = run(["make", "-C", tdir, "SRC_PATH=" +
                           os.path.join(hsptguest.BUILD, "src"),
                           "QEMU=" + wrapper, "run-plugin-" + variant],
                          "tcg-hspt-plugin-%s.log" % variant, timeout=600,
                          env={"QEMU_HSPT_STATS": "1"})
            on = read_text(pout)
            fills = first_int(r"^fills: (\d+) pages", out)
            if on is None:
                verdict, ok = "missing", False
            elif on == off:
                verdict, ok = "as with hspt=off", True
            elif name == "interrupt":
                verdict, ok = "not compared", True
            else:
                verdict, ok = "differs from hspt=off's", False
            t.add(rc == 0 and fills > 0 and ok,
                  "tcg: %s with hspt=on, plugin output as with hspt=off"
                  % variant,
                  "rc=%d fills=%d, output %s; see "
                  "build/check/tcg-hspt-plugin-%s.log"
                  % (rc, fills, verdict, variant))


def read_text(path):
    """PATH's text, or None if it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path, errors="replace") as f:
        return f.read()


def plugin_access_digest(tdir, label, accel_args):
    """Run check-tcg's memory test with the mem plugin printing every
    access with its physical address (qemu_plugin_get_hwaddr()); return
    (exit status, md5 and count of the printed accesses, QEMU's stderr).
    The list (about 260 MB) is hashed as it comes, not kept."""
    plugin = os.path.join(QEMU_BUILD, "tests", "tcg", "plugins", "libmem.so")
    cmd = ([hsptguest.QEMU_SYSTEM, "-M", "virt", "-cpu", "max",
            "-display", "none", "-monitor", "none",
            "-semihosting-config", "enable=on,target=native,chardev=output",
            "-chardev", "file,path=%s,id=output"
            % os.path.join(LOGDIR, "tcg-plugin-%s.out" % label)]
           + accel_args
           + ["-plugin", plugin + ",haddr=on,print-accesses=on",
              "-d", "plugin", "-D", "/dev/stdout",
              "-kernel", os.path.join(tdir, "memory")])
    stderr_path = os.path.join(LOGDIR, "tcg-plugin-%s.log" % label)
    md5, lines = hashlib.md5(), 0
    with open(stderr_path, "w") as err:
        err.write("$ " + " ".join(cmd) + "\n")
        err.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
            md5.update(chunk)
            lines += chunk.count(b"\n")
        rc = proc.wait()
    with open(stderr_path, errors="replace") as err:
        return rc, md5.hexdigest(), lines, err.read()


def check_plugin_hwaddr(t, tdir):
    """A plugin sees the same physical address for every access with
    hspt=on as with hspt=off.

    qemu_plugin_get_hwaddr() reads the softmmu TLB entry of the access,
    which a direct access does not fill. Up to 0.7.4 it failed for most
    accesses with hspt=on ("invalid use of qemu_plugin_get_hwaddr", and
    the mem plugin's haddr=on then dereferenced NULL and QEMU died)."""
    rc_off, md5_off, n_off, _ = plugin_access_digest(tdir, "off", [])
    rc_on, md5_on, n_on, err = plugin_access_digest(
        tdir, "hspt", ["-accel", "tcg,hspt=on"])
    invalid = err.count("invalid use of qemu_plugin_get_hwaddr")
    t.add(rc_off == 0 and rc_on == 0 and n_on > 0 and md5_on == md5_off
          and invalid == 0,
          "tcg: memory with the mem plugin's physical addresses, hspt=on "
          "as hspt=off",
          "off: rc=%d %d accesses %s; on: rc=%d %d accesses %s, %d failed "
          "lookups; see build/check/tcg-plugin-*.log"
          % (rc_off, n_off, md5_off, rc_on, n_on, md5_on, invalid))


BAREMETAL = os.path.join(hsptguest.REPO, "tests", "hspt", "baremetal")
# hspt-nursery=1000000 keeps every context but the first in the nursery
# for the whole test; thread=single runs all vCPUs on one thread, which
# must point generated code at each vCPU's space as it takes turns.
# QEMU's seccomp filter with every group of system calls denied: the
# shadow's mmap/mprotect calls and its SIGSEGV handler must get through.
SANDBOX_ALL = ("on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
               "resourcecontrol=deny")

BARE_CONFIGS = [
    ("hspt=off", []),
    ("hspt=on", ["-accel", "tcg,hspt=on"]),
    ("hspt-spt=private", ["-accel", "tcg,hspt=on,hspt-spt=private"]),
    ("hspt-spt=shared", ["-accel", "tcg,hspt=on,hspt-spt=shared"]),
    ("hspt-nursery=1000000", ["-accel", "tcg,hspt=on,hspt-nursery=1000000"]),
    ("thread=single", ["-accel", "tcg,hspt=on,thread=single"]),
    # The SIGSEGV handler finds the TB from the executable view's PC.
    ("split-wx=on", ["-accel", "tcg,hspt=on,split-wx=on"]),
    ("one-insn-per-tb=on", ["-accel", "tcg,hspt=on,one-insn-per-tb=on"]),
    ("-sandbox", ["-accel", "tcg,hspt=on", "-sandbox", SANDBOX_ALL]),
]


def first_int(pattern, text, default=0):
    """The number that PATTERN's group 1 matches first in TEXT (an info hspt
    counter, say; ^ anchors at lines), or DEFAULT if it does not match."""
    m = re.search(pattern, text, re.M)
    return int(m.group(1)) if m else default


def run_bare_test(elf, accel, log, env, smp=2):
    """Run a bare-metal test ELF (tlbi-test, endian-test) on -M virt with
    ACCEL (arguments), SMP vCPUs and ENV added; return (rc, output) as
    run() does."""
    return run([hsptguest.QEMU_SYSTEM, "-M", "virt", "-cpu", "max",
                "-smp", str(smp), "-display", "none", "-monitor", "none",
                "-serial", "stdio", "-kernel", elf] + accel,
               log, timeout=300, env=env)


def build_bare_elf(test, name, cflags=(), fatal_exceptions=True):
    """Build the bare-metal test TEST (tests/hspt/baremetal/TEST.c) as
    build/check/NAME.elf with CFLAGS, and with fatal.c's exception
    handlers unless it has its own; its path, or None if that failed
    (log: build/check/bare-build-NAME.log)."""
    elf = os.path.join(LOGDIR, name + ".elf")
    rc, _ = run(["arm-linux-gnueabihf-gcc", "-march=armv7-a", "-marm",
                 "-mfloat-abi=soft", "-O2", "-Wall", "-Wextra", "-Werror",
                 "-ffreestanding", "-fno-builtin", "-nostdlib", "-static",
                 "-Wl,--build-id=none", "-Wl,-z,noexecstack",
                 "-Wl,--no-warn-rwx-segments"] + list(cflags) +
                ["-T", os.path.join(BAREMETAL, "link.ld"),
                 os.path.join(BAREMETAL, "start.S"),
                 os.path.join(BAREMETAL, test + ".c")] +
                ([os.path.join(BAREMETAL, "fatal.c")]
                 if fatal_exceptions else []) + ["-o", elf],
                "bare-build-%s.log" % name, timeout=300)
    return elf if rc == 0 else None


def bare_elf_or_fail(t, stage, test):
    """build_bare_elf(TEST, TEST), or None after a failed check of STAGE
    that points at the build log."""
    elf = build_bare_elf(test, test)
    if not elf:
        t.add(False, "%s: build %s" % (stage, test),
              "see build/check/bare-build-%s.log" % test)
    return elf


def stage_bare(t):
    """tlbi-test on two and on four vCPUs (MTTCG): no stale translation
    after a TLBI, with short-descriptor and with LPAE page tables."""
    for fmt, cflags in [("short", []), ("lpae", ["-DLPAE"])]:
        elf = build_bare_elf("tlbi-test", "tlbi-test-%s" % fmt, cflags,
                             fatal_exceptions=False)
        if not elf:
            t.add(False, "bare: build tlbi-test (%s)" % fmt,
                  "see build/check/bare-build-tlbi-test-%s.log" % fmt)
            continue
        for label, accel in BARE_CONFIGS:
            name = "tlbi-test (%s), %s" % (fmt, label)
            # Broadcasts must reach every other vCPU, not just one.
            log4 = "bare-tlbi-%s-%s-smp4.log" % (fmt, label.replace("=", "-"))
            rc, out = run_bare_test(elf, accel, log4, {}, smp=4)
            t.add(rc == 0 and "\nTLBI OK" in out and "FAIL" not in out and
                  ", 4 vCPUs\n" in out, "bare: %s, 4 vCPUs" % name,
                  "rc=%d, see build/check/%s" % (rc, log4))
            log = "bare-tlbi-%s-%s.log" % (fmt, label.replace("=", "-"))
            rc, out = run_bare_test(elf, accel, log, {"QEMU_HSPT_STATS": "1"})
            t.add(rc == 0 and "\nTLBI OK" in out and "FAIL" not in out and
                  ", 2 vCPUs\n" in out, "bare: %s, 2 vCPUs" % name,
                  "rc=%d, see build/check/%s" % (rc, log))
            if not accel:
                continue
            if "hspt-nursery=1000000" in label:
                young = first_int(r"^nursery: (\d+) switches", out)
                t.add(young > 0,
                      "bare: %s: contexts ran in the nursery (info hspt)"
                      % name,
                      "%d switches into the nursery, see build/check/%s"
                      % (young, log))
                continue
            # The direct path was used; with several spaces, switches found
            # their context's shadow kept (a shared space cannot), and the
            # other-context TLBIs took the deferred path that test checks;
            # TLBIASIDs kept global pages, which the test then relies on
            # being dropped by every other flavour; TLBIALLs kept the pages
            # of a block mapped page by page from one lookup of the block;
            # unmapped pages were parked, and some refilled from there
            # (the test's stale-translation checks cover parked pages);
            # switches back to a context kept its TB jump cache (the test's
            # code checks cover a TLBI made while it was not current);
            # TLBIMVAs of ASID 2 left ASID 1's copy of the VA alone.
            fills = first_int(r"^fills: (\d+) pages", out)
            hits = first_int(r"^context switches: \d+, (\d+) to a space", out)
            jc_kept = first_int(r"^context switches: .*, (\d+) kept the "
                                r"space's TB jump cache", out)
            deferred = first_int(r"^deferred: (\d+) page flushes", out)
            globals_kept = first_int(r"by ASID \((\d+) global pages kept\)",
                                     out)
            by_block = first_int(r"\((\d+) by their large guest page's "
                                 r"lookup\)", out)
            tlbimva_kept = first_int(r"(\d+) pages kept at a TLBIMVA of "
                                     r"another ASID", out)
            parks = first_int(r"^parked: (\d+) page flushes", out)
            unparks = first_int(r"^parked: \d+ .*, (\d+) refills", out)
            kept = label == "hspt-spt=shared" or (hits > 0 and deferred > 0
                                                  and jc_kept > 0)
            t.add(fills > 0 and kept and globals_kept > 0 and by_block > 0 and
                  parks > 0 and unparks > 0 and tlbimva_kept > 0,
                  "bare: %s: shadow used (info hspt)" % name,
                  "fills=%s switch hits=%s deferred=%s jump caches kept=%s "
                  "global pages kept at TLBIASID=%s kept by a block's "
                  "lookup=%s parked=%s refilled from parked=%s kept at "
                  "another ASID's TLBIMVA=%s, see build/check/%s"
                  % (fills, hits, deferred, jc_kept, globals_kept, by_block,
                     parks, unparks, tlbimva_kept, log))
    check_bookkeeping_exhausted(t)
    check_base_without_wrgsbase(t)
    check_unmap_failure_bare(t)
    check_reset_wipes_parked(t)
    check_reset_unmap_failure(t)
    check_big_endian(t)
    check_base_in_gs(t)


# Generated code's %gs form on any host (hspt-region.c: arch_prctl() sets
# %gs where the host has no FSGSBASE).
GS_BY_SYSCALL = {"QEMU_HSPT_GS_BY_SYSCALL": "1", "QEMU_HSPT_STATS": "1"}
GS_FORM = "space base in %gs"


def check_base_in_gs(t):
    """tlbi-test passes with generated code in its %gs form, the form
    every host with FSGSBASE runs (this one may run the thread-local
    form instead, and then the other bare checks do not cover it):
    both page-table formats, four vCPUs on their threads and on one
    (thread=single, which sets %gs at each turn)."""
    for fmt in ("short", "lpae"):
        elf = os.path.join(LOGDIR, "tlbi-test-%s.elf" % fmt)
        for label, accel in [("hspt=on", "tcg,hspt=on"),
                             ("thread=single", "tcg,hspt=on,thread=single")]:
            name = "bare: tlbi-test (%s), %s, %%gs form" % (fmt, label)
            log = "bare-tlbi-%s-gs-%s.log" % (fmt, label.replace("=", "-"))
            if not os.path.exists(elf):
                t.add(False, name, "no %s" % elf)
                continue
            rc, out = run_bare_test(elf, ["-accel", accel], log,
                                    GS_BY_SYSCALL, smp=4)
            switches = first_int(r"^context switches: (\d+)", out)
            t.add(rc == 0 and "\nTLBI OK" in out and "FAIL" not in out and
                  GS_FORM in out and switches > 0, name,
                  "rc=%d, context switches=%d, %s; see build/check/%s"
                  % (rc, switches, "%gs form" if GS_FORM in out
                     else "not the %gs form", log))


def check_big_endian(t):
    """Big-endian loads and stores (SETEND BE, as BE8 code runs) give
    the same bytes on the direct path as on softmmu.

    endian-test checks every value itself; with hspt=on its page is
    shadow-mapped before the first big-endian access, so the direct path
    (movbe on this backend) does them. A direct path that dropped the byte
    swap fails every load there."""
    elf = bare_elf_or_fail(t, "bare", "endian-test")
    if not elf:
        return
    for label, accel in BARE_CONFIGS[:2]:
        log = "bare-endian-%s.log" % label.replace("=", "-")
        rc, out = run_bare_test(elf, accel, log, {"QEMU_HSPT_STATS": "1"},
                                smp=1)
        fills = first_int(r"^fills: (\d+) pages", out)
        t.add(rc == 0 and "ENDIAN PASS" in out and "FAIL" not in out and
              (fills > 0 or not accel),
              "bare: big-endian data accesses, %s" % label,
              "rc=%d, %d fills, see build/check/%s" % (rc, fills, log))


def preload_library():
    """Build tests/hspt/faultinject/preload.c (an LD_PRELOAD library that
    fakes host failures) once; its path, or None if it does not build."""
    shim = os.path.join(LOGDIR, "hspt-preload.so")
    src = os.path.join(hsptguest.REPO, "tests", "hspt", "faultinject",
                       "preload.c")
    if (not os.path.exists(shim) or
            os.path.getmtime(shim) < os.path.getmtime(src)):
        rc, _ = run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror",
                     "-o", shim, src, "-ldl"], "build-preload.log",
                    timeout=300)
        if rc != 0:
            return None
    return shim


def check_bookkeeping_exhausted(t):
    """Out of memory for a new space's bookkeeping, HSPT warns and lets
    contexts share the spaces it has, with the same guest results; without
    memory for the first one QEMU exits with an error.

    hspt-preload.so (LD_PRELOAD) fails the bookkeeping mmap() of every space
    but each vCPU's first one.
    """
    shim = preload_library()
    elf = os.path.join(LOGDIR, "tlbi-test-lpae.elf")
    name = "bare: tlbi-test (lpae), hspt=on, no memory for more spaces"
    if not shim or not os.path.exists(elf):
        t.add(False, name, "see build/check/build-preload.log")
        return
    log = "bare-tlbi-lpae-no-spaces.log"
    # One slot's RAM-page array: 4 GiB of guest pages, 4 bytes each.
    fail_env = {"LD_PRELOAD": shim, "HSPT_FAIL_MMAP_SIZE": str(4 << 20)}
    rc, out = run_bare_test(elf, ["-accel", "tcg,hspt=on"], log,
                            dict(fail_env, QEMU_HSPT_STATS="1",
                                 HSPT_FAIL_MMAP_AFTER="6"))
    unused = first_int(r"^mmap errors: \d+, (\d+) spaces left unused", out)
    t.add(rc == 0 and "\nTLBI OK" in out and "FAIL" not in out and
          unused > 0 and "out of memory for shadow bookkeeping" in out,
          name, "rc=%d, spaces left unused=%d, see build/check/%s"
          % (rc, unused, log))
    # Not even a vCPU's first space: an error at startup, not a crash.
    log = "bare-tlbi-lpae-no-space.log"
    rc, out = run_bare_test(elf, ["-accel", "tcg,hspt=on"], log,
                            dict(fail_env, HSPT_FAIL_MMAP_AFTER="0"), smp=1)
    t.add(rc == 1 and "cannot allocate shadow bookkeeping for vCPU 0" in out,
          "bare: hspt=on without memory for any space exits with an error",
          "rc=%d, see build/check/%s" % (rc, log))


def check_base_without_wrgsbase(t):
    """On a host without wrgsbase (no FSGSBASE, or Linux before 5.9)
    generated code loads each slot's base from thread-local storage
    instead of using %gs, so a switch of space makes no system call.
    hspt-preload.so hides HWCAP2_FSGSBASE and denies arch_prctl(), which
    HSPT needed for %gs there up to 0.7.0: tlbi-test must pass on both
    page-table formats, with context switches. (Where the host itself has
    no FSGSBASE, the other bare checks take this path too.)"""
    shim = preload_library()
    no_fsgsbase = {"LD_PRELOAD": shim or "", "HSPT_NO_FSGSBASE": "1",
                   "HSPT_FAIL_ARCH_PRCTL": "1", "QEMU_HSPT_STATS": "1"}
    for fmt in ("short", "lpae"):
        elf = os.path.join(LOGDIR, "tlbi-test-%s.elf" % fmt)
        name = ("bare: tlbi-test (%s), hspt=on, no wrgsbase nor arch_prctl: "
                "slot bases in thread-local storage" % fmt)
        if not shim or not os.path.exists(elf):
            t.add(False, name, "see build/check/build-preload.log")
            continue
        log = "bare-tlbi-%s-tls-base.log" % fmt
        rc, out = run_bare_test(elf, ["-accel", "tcg,hspt=on"], log,
                                no_fsgsbase)
        switches = first_int(r"^context switches: (\d+)", out)
        t.add(rc == 0 and "\nTLBI OK" in out and "FAIL" not in out and
              switches > 0, name, "rc=%d, context switches=%d, see "
              "build/check/%s" % (rc, switches, log))


# info hspt's count of vCPUs that gave up their shadow after a failed unmap
MOVED_TO_SOFTMMU = r"(\d+) vCPUs moved to softmmu after a failed unmap"

# Every shadow unmap after this many fails (hspt-preload.so): the first
# tlbi-test phases have run on the shadow by then.
UNMAP_FAILS_AFTER = ("20", "50")


def check_unmap_failure_bare(t):
    """An unmap that fails (the host out of memory) leaves its old mapping
    behind: the vCPU must warn and go on on softmmu, never use the stale
    page, never abort. hspt-preload.so fails every unmap after the first
    N; tlbi-test then checks that no translation a TLBI removed is used.
    A vCPU that gave up makes no more unmap calls (its shadow is never
    read again): at most one failure per vCPU (hspt_unmap_error)."""
    shim = preload_library()
    for fmt in ("short", "lpae"):
        elf = os.path.join(LOGDIR, "tlbi-test-%s.elf" % fmt)
        for after in UNMAP_FAILS_AFTER:
            name = ("bare: tlbi-test (%s), hspt=on, unmaps fail after %s"
                    % (fmt, after))
            if not shim or not os.path.exists(elf):
                t.add(False, name, "see build/check/build-preload.log")
                continue
            log = "bare-tlbi-%s-unmap-fails-%s.log" % (fmt, after)
            rc, out = run_bare_test(elf, ["-accel", "tcg,hspt=on",
                                          "-trace", "hspt_unmap_error"], log,
                                    {"LD_PRELOAD": shim,
                                     "HSPT_FAIL_RESERVE_AFTER": after,
                                     "QEMU_HSPT_STATS": "1"})
            moved = first_int(MOVED_TO_SOFTMMU, out)
            failed = len(re.findall(r"^hspt_unmap_error ", out, re.M))
            t.add(rc == 0 and "\nTLBI OK" in out and "FAIL" not in out and
                  moved > 0 and "it continues on softmmu" in out and
                  0 < failed <= 2, name,
                  "rc=%d, vCPUs moved to softmmu=%d, failed unmaps=%d "
                  "(want 1-2), see build/check/%s"
                  % (rc, moved, failed, log))


def check_unmap_failure(t, exp):
    """The same in a Linux guest (-smp 2): unmaps fail from some point of
    the boot on, and the workloads still give hspt=off's checksums. (The
    first 3000 unmaps succeeded up to 0.7.2; since the other vCPUs stopped
    dropping all their spaces at a guest TLBIALLIS, the whole run makes
    fewer than that.)"""
    shim = preload_library()
    workloads = ["forkstorm", "cow", "seqrw", "shpipe"]
    label = "lpae-6.1 hspt, unmaps fail"
    if not shim:
        t.add(False, "guest: " + label, "see build/check/build-preload.log")
        return
    log = "guest-unmap-fails.log"
    res = boot_hspt_stats(log, workloads, smp=2,
                          env={"LD_PRELOAD": shim,
                               "HSPT_FAIL_RESERVE_AFTER": "1000"})
    check_boot(t, label, res, workloads, exp)
    moved = first_int(MOVED_TO_SOFTMMU, res.console)
    t.add(res.ok and moved > 0,
          "guest: %s: the vCPUs went on on softmmu" % label,
          "%d vCPUs moved; see build/check/%s" % (moved, log))


load_expected = hsptguest.load_expected


def stage_user(t):
    exp = load_expected()
    for name in hsptguest.USER_MODE_WORKLOADS:
        rc, secs, out = hsptguest.run_user(name)
        md5 = hashlib.md5(out.encode()).hexdigest()
        t.add(rc == 0 and md5 == exp.get(name), "user: %s under qemu-arm" % name,
              "status %d, md5 %s, expected %s" % (rc, md5, exp.get(name)))


def guest_configs():
    """(label, kernel, smp, workloads, extra qemu args) of every guest boot."""
    configs = []
    for k in hsptguest.kernels():
        configs.append(("%s smp1" % k, k, 1, hsptguest.WORKLOADS, []))
    for k in hsptguest.kernels():
        configs.append(("%s smp4" % k, k, 4, SMP_WORKLOADS, []))
    # hspt=on: every kernel with the default organisation
    # (group), private on the LPAE (ASID) and the DACR-switching kernel, and
    # shared on LPAE. (Shared on the DACR kernel flushes twice per user
    # copy: minutes per boot, too slow for a test.)
    for k in hsptguest.kernels():
        configs.append(("%s hspt" % k, k, 1, hsptguest.WORKLOADS,
                        ["-accel", "tcg,hspt=on"]))
    for k, org in [("lpae-6.1", "private"), ("armmp-6.1", "private"),
                   ("lpae-6.1", "shared")]:
        configs.append(("%s hspt %s" % (k, org), k, 1, hsptguest.WORKLOADS,
                        ["-accel", "tcg,hspt=on,hspt-spt=" + org]))
    # New processes on softmmu-only code for their first 2 ms, on both
    # kinds of page tables.
    for k in ["lpae-6.1", "armmp-6.1"]:
        configs.append(("%s hspt nursery" % k, k, 1, hsptguest.WORKLOADS,
                        ["-accel", "tcg,hspt=on,hspt-nursery=2000"]))
    configs.append(("lpae-6.1 hspt smp4 nursery", "lpae-6.1", 4,
                    SMP_WORKLOADS, ["-accel", "tcg,hspt=on,hspt-nursery=2000"]))
    # MTTCG: four vCPUs sharing memory and processes, on the ASID (LPAE)
    # and the DACR-switching kernel.
    for k in ["lpae-6.1", "armmp-6.1"]:
        configs.append(("%s hspt smp4" % k, k, 4, SMP_WORKLOADS,
                        ["-accel", "tcg,hspt=on"]))
    return configs


def check_boot(t, label, res, wanted, exp, stage="guest"):
    got = {r.name: r for r in res.results}
    for name in wanted:
        r = got.get(name)
        if r is None:
            t.add(False, "%s: %s: %s" % (stage, label, name),
                  "no result (%s)" % (res.error or "missing"))
            continue
        t.add(r.status == 0 and r.checksum == exp.get(name),
              "%s: %s: %s" % (stage, label, name),
              "status %d, md5 %s, expected %s; output: %s"
              % (r.status, r.checksum, exp.get(name), " | ".join(r.output[-5:])))
    t.add(res.ok, "%s: %s: clean boot and power-off" % (stage, label),
          res.error)


def stage_guest(t, jobs):
    exp = load_expected()
    configs = guest_configs()

    def one(cfg):
        label, kernel, smp, workloads, extra = cfg
        logname = "guest-%s.log" % label.replace(" ", "-")
        with open(os.path.join(LOGDIR, logname), "w") as log:
            return cfg, hsptguest.boot(kernel, workloads, smp=smp,
                                       extra_args=extra, log=log)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for cfg, res in pool.map(one, configs):
            check_boot(t, cfg[0], res, cfg[3], exp)
    check_fault_ahead(t)
    check_run_fills(t, exp)
    check_highmem(t, exp)
    check_setups(t, exp)
    check_broadcast_flushes(t, exp)
    check_rights_merged(t, exp)
    check_sites_return(t)
    check_short_switch_revalidates(t)
    check_nursery(t)
    check_vma_estimate(t)
    check_dump_without_guest_core(t)
    check_vma_budget(t, exp)
    check_backend_share(t, exp)
    check_file_backend_private(t, exp)
    check_unmap_failure(t, exp)
    check_bench_paired(t)
    check_bench_checksums(t)


def check_bench_checksums(t):
    """bench.py stops when a configuration prints another checksum than
    the expected one: here the second configuration's kernel command line
    (QEMU takes the last -append) runs kaddr at size "bench"."""
    out = os.path.join(LOGDIR, "bench-checksums")
    shutil.rmtree(out, ignore_errors=True)
    qemu = hsptguest.QEMU_SYSTEM
    append = "console=ttyAMA0 quiet hspt.size=bench hspt.reps=1 hspt.run=kaddr"
    cmd = [sys.executable, BENCH, "--reps", "1", "--size", "test", "--no-user",
           "--workloads", "kaddr", "--out", out,
           "--config", "off=" + qemu,
           "--config", "other=%s -accel tcg,hspt=on -append '%s'"
           % (qemu, append)]
    rc, output = run(cmd, "bench-checksums.log", timeout=600)
    t.add(rc != 0 and "other printed checksum(s)" in output and
          "expected %s" % load_expected().get("kaddr") in output,
          "bench: a configuration with another checksum stops the benchmark",
          "rc %d: %s" % (rc, output[-300:]))


def check_bench_paired(t):
    """bench.py --paired boots the configurations of a repetition (once
    per workload) each on a host CPU of its own, swaps the CPUs for the
    next repetition and reports medians of the per-repetition ratios."""
    out = os.path.join(LOGDIR, "bench-paired")
    shutil.rmtree(out, ignore_errors=True)  # no logs of an earlier run
    qemu = hsptguest.QEMU_SYSTEM
    cmd = [sys.executable, BENCH, "--paired", "--reps", "2", "--size", "test",
           "--no-user", "--workloads", "seqrw", "--out", out,
           "--config", "off=" + qemu,
           "--config", "on=%s -accel tcg,hspt=on" % qemu]
    rc, output = run(cmd, "bench-paired.log", timeout=900)
    name = "bench: --paired pins each configuration to its own CPU"
    if len(os.sched_getaffinity(0)) < 2:
        t.add(rc != 0 and "needs a host CPU per configuration" in output,
              "bench: --paired refuses a host with one CPU", output[-200:])
        return
    if rc != 0:
        t.add(False, name, "rc %d; see build/check/bench-paired.log" % rc)
        return
    pinned = {}
    for label in ("off", "on"):
        for rep in (1, 2):
            with open(os.path.join(out, "%s-%d-seqrw.log"
                                   % (label, rep))) as f:
                pinned[label, rep] = first_int(r"# pinned to host CPU (\d+)",
                                               f.read(), -1)
    t.add(pinned["off", 1] != pinned["on", 1] and
          pinned["off", 1] == pinned["on", 2] and
          pinned["on", 1] == pinned["off", 2], name, str(pinned))
    with open(os.path.join(out, "summary.csv")) as f:
        rows = {r[0]: r for r in csv.reader(f)}
    ok = (rows.get("workload", [])[-1:] == ["off/on"] and
          all(re.fullmatch(r"\d+\.\d\d", rows.get(n, ["-"])[-1])
              for n in ("boot", "seqrw")) and "cpu-user" not in rows)
    t.add(ok, "bench: --paired reports per-repetition ratios, no CPU rows",
          str(rows))


HSPT_ON = "tcg,hspt=on"


def boot_hspt_stats(logname, workloads, kernel="lpae-6.1", env=None,
                    accel=HSPT_ON, smp=1, extra_args=()):
    """Boot KERNEL with ACCEL (hspt=on), SMP vCPUs and EXTRA_ARGS running
    WORKLOADS, with the HSPT counters printed at exit (in res.console) and
    ENV added; log to LOGNAME."""
    with open(os.path.join(LOGDIR, logname), "w") as f:
        return hsptguest.boot(kernel, workloads, smp=smp, log=f,
                              extra_args=list(extra_args) + ["-accel", accel],
                              env=dict(env or {}, QEMU_HSPT_STATS="1"))


def reported_buffer_pages(res, workload):
    """Pages of the buffer WORKLOAD (seqrw, cow) reports in RES
    ("NAME: size=test bytes=N ...")."""
    return first_int(r"^HSPT-OUT %s: %s: .*\bbytes=(\d+)" % (workload, workload),
                     res.console) // 4096


def seqrw_fault_ahead(res):
    """(pages of seqrw's buffer, pages fetched ahead) in a boot of
    boot_hspt_stats() that ran seqrw."""
    return (reported_buffer_pages(res, "seqrw"),
            first_int(r"^fault-ahead: (\d+) pages", res.console))


def check_fault_ahead(t):
    """seqrw's fresh pages are mapped at the guest's exception return, and
    unmapped ahead of their page flushes at its munmap.

    Its fill loop soon runs on softmmu (it keeps faulting into the guest);
    the guest retries each faulting store in a new block that uses the
    direct path, which must find the page mapped already (fault-ahead),
    not take a signal: at least one fault-ahead per page of the buffer.
    """
    log = "guest-fault-ahead.log"
    res = boot_hspt_stats(log, ["seqrw"])
    buffer_pages, ahead = seqrw_fault_ahead(res)
    t.add(res.ok and buffer_pages > 0 and ahead >= buffer_pages,
          "guest: lpae-6.1 hspt: seqrw's fresh pages are fetched ahead",
          "fault-ahead %d pages, want >= %d; see build/check/%s"
          % (ahead, buffer_pages, log))
    # Its munmap clears the buffer's entries, then flushes page by page:
    # the first failed lookup of each 65 pages unmaps the next 64 too.
    unmapped = first_int(r"(\d+) pages unmapped ahead of their page flush",
                         res.console)
    t.add(res.ok and buffer_pages > 0 and unmapped >= buffer_pages * 3 // 4,
          "guest: lpae-6.1 hspt: seqrw's munmap unmaps pages ahead of "
          "their page flush", "%d unmapped ahead, want >= %d; see "
          "build/check/%s" % (unmapped, buffer_pages * 3 // 4, log))


def check_run_fills(t, exp):
    """A writable fill that streams through a large guest page that also
    holds code maps the writable pages ahead in one go, not page by page.

    The zImage decompressor copies itself, 32 bytes at a time, through the
    1 MiB sections that hold its own code: up to 0.7.1 that took a signal
    and a fill per page (3 451 per LPAE boot). Now a fill that continues
    the copy maps up to 16 pages. The kernel's results must stay those of
    hspt=off.
    """
    log = "guest-run-fills.log"
    res = boot_hspt_stats(log, ["smc"])
    check_boot(t, "lpae-6.1 hspt, runs of pages next to code", res, ["smc"],
               exp)
    runs = first_int(r"^fills: .*, (\d+) runs of pages", res.console, -1)
    t.add(res.ok and runs >= 100,
          "guest: lpae-6.1 hspt: pages next to code are filled in runs",
          "%d runs, want >= 100; see build/check/%s" % (runs, log))


def check_highmem(t, exp):
    """A page flush next to the kernel's large pages drops no more than
    the large page it falls into, if any.

    With 1 GiB of RAM the guest kit's kernels have highmem, and each
    access of the kernel to a highmem page (zeroing, copy-on-write) maps
    it at a kmap slot just above the linear map and flushes that page.
    Up to 0.7.2 a page flush anywhere in the range spanned by the large
    pages of a view flushed the whole view: 115 000-180 000 slot flushes
    and 0.95-1.7 million signals for seqrw and cow at test size, with a
    boot of 17-19 s against 2 s. The results must stay those of hspt=off.
    """
    wanted = ["seqrw", "cow"]
    for kernel in ("lpae-6.1", "armmp-6.1"):
        log = "guest-highmem-%s.log" % kernel
        res = boot_hspt_stats(log, wanted, kernel=kernel,
                              extra_args=["-m", "1G"])
        check_boot(t, "%s hspt -m 1G (highmem)" % kernel, res, wanted, exp)
        regions = first_int(r"^flushes: \d+ pages, (\d+) regions",
                            res.console, -1)
        signals = first_int(r"^signals: (\d+)", res.console, -1)
        t.add(res.ok and 0 <= regions < 1000 and 0 <= signals < 50000,
              "guest: %s hspt -m 1G: kmap flushes leave the kernel's "
              "view mapped" % kernel,
              "%d region flushes (want < 1000), %d signals (want < 50000); "
              "see build/check/%s" % (regions, signals, log))


def check_setups(t, exp):
    """Guest setups that no other guest boot has, most of them make
    bench-sweep's: RAM above 4 GiB (-m 4G: guest RAM from 1 GiB to 5 GiB,
    LPAE) and other CPU models; generated code's %gs form (see
    check_base_in_gs); split-wx=on (code run from a second view of the
    code buffer, so the SIGSEGV handler sees PCs there, also in TBs
    dropped to softmmu); and QEMU's seccomp sandbox with every group
    denied. The results must be those of hspt=off, with the direct path in
    use."""
    for label, kernel, args, env, accel in [
            ("-m 4G", "lpae-6.12", ["-m", "4G"], None, HSPT_ON),
            ("-cpu cortex-a7", "armmp-6.1", ["-cpu", "cortex-a7"], None,
             HSPT_ON),
            ("-cpu max", "lpae-6.1", ["-cpu", "max"], None, HSPT_ON),
            ("-smp 2, %gs form", "lpae-6.1", ["-smp", "2"], GS_BY_SYSCALL,
             HSPT_ON),
            ("-smp 2, split-wx=on", "armmp-6.1", ["-smp", "2"], None,
             HSPT_ON + ",split-wx=on"),
            ("-sandbox", "lpae-6.1", ["-sandbox", SANDBOX_ALL], None,
             HSPT_ON)]:
        log = "guest-setup-%s-%s.log" % (
            kernel, re.sub(r"[^\w.]+", "-", label).strip("-"))
        res = boot_hspt_stats(log, SETUP_WORKLOADS, kernel=kernel,
                              extra_args=args, env=env, accel=accel)
        check_boot(t, "%s hspt %s" % (kernel, label), res, SETUP_WORKLOADS,
                   exp)
        fills = first_int(r"^fills: (\d+) pages", res.console, -1)
        dropped = first_int(r"^left on softmmu: \d+ .*, (\d+) translation "
                            r"blocks retranslated", res.console)
        t.add(res.ok and fills > 0 and (not env or GS_FORM in res.console) and
              ("split-wx" not in accel or dropped > 0),
              "guest: %s hspt %s: shadow used (info hspt)" % (kernel, label),
              "%d fills, %d blocks dropped to softmmu; see build/check/%s"
              % (fills, dropped, log))


def check_broadcast_flushes(t, exp):
    """Every vCPU's part of a guest TLBIALLIS revalidates its current
    space, as the issuing vCPU's does, instead of dropping all its spaces.

    The guest kit's kernels (erratum 720789) flush each mm with TLBIALLIS.
    Up to 0.7.2 only the issuing vCPU knew its flush came from the guest:
    forkstorm at -smp 4 took 1 925 slot flushes and 65 000 signals, and 5
    times as long as on softmmu; with the broadcast told apart, 35 slot
    flushes and 15 000 signals. The results must stay those of hspt=off.
    """
    log = "guest-broadcast-flushes.log"
    res = boot_hspt_stats(log, ["forkstorm"], smp=4)
    check_boot(t, "lpae-6.1 hspt smp4, broadcast TLBIALLIS", res,
               ["forkstorm"], exp)
    regions = first_int(r"^flushes: \d+ pages, (\d+) regions", res.console,
                        -1)
    t.add(res.ok and 0 <= regions < 300,
          "guest: lpae-6.1 hspt smp4: other vCPUs revalidate at a guest "
          "TLBIALLIS", "%d region flushes, want < 300; see build/check/%s"
          % (regions, log))


def check_rights_merged(t, exp):
    """The write protection of a process's pages at a guest fork takes one
    mprotect per run of adjacent pages, not one per page.

    cow's parent forks with its buffer mapped writable; the fork's TLB
    flush revalidates each page, which is now read-only: most of those
    rights changes must be made in one call with a neighbour's, and the
    results must stay those of hspt=off.
    """
    log = "guest-rights-merged.log"
    res = boot_hspt_stats(log, ["cow"])
    check_boot(t, "lpae-6.1 hspt, rights changes merged", res, ["cow"], exp)
    pages = reported_buffer_pages(res, "cow")
    merged = first_int(r"(\d+) rights changes made in one call",
                       res.console)
    t.add(res.ok and pages > 0 and merged >= pages,
          "guest: lpae-6.1 hspt: a fork write-protects runs of pages in "
          "one call", "%d rights changes merged, want >= %d (one fork's "
          "buffer); see build/check/%s" % (merged, pages, log))


def check_sites_return(t):
    """Softmmu-only blocks whose pages are shadow-mapped get the direct
    path back.

    In shpipe each new busybox process faults into the guest on its first
    touches, so blocks shared by all of them (strcmp in sort) go to
    softmmu; their later slow-path lookups find the pages mapped and must
    bring some of them back.
    """
    log = "guest-sites-return.log"
    res = boot_hspt_stats(log, ["shpipe"])
    back = first_int(r"without the direct path, (\d+) back on it",
                     res.console)
    t.add(res.ok and back > 0,
          "guest: lpae-6.1 hspt: softmmu-only blocks return to the direct "
          "path", "%d blocks back on it; see build/check/%s" % (back, log))


def check_short_switch_revalidates(t):
    """A space given to a new process keeps the kernel's pages with short
    descriptors too.

    Linux writes the new ASID while TTBR0 points at its global-only
    tables; the reassigned space must be revalidated with those registers
    (global kernel pages stay), not dropped: forkstorm must flush fewer
    whole regions than it reassigns spaces (dropping costs up to three per
    reassignment, one per view).
    """
    log = "guest-short-switch.log"
    res = boot_hspt_stats(log, ["forkstorm"], kernel="armmp-6.1")
    regions = first_int(r"^flushes: \d+ pages, (\d+) regions", res.console,
                        default=-1)
    reassigned = first_int(r"^context switches: \d+, \d+ to a space holding "
                           r"the context, (\d+) spaces reassigned",
                           res.console)
    t.add(res.ok and 0 <= regions < reassigned,
          "guest: armmp-6.1 hspt: reassigned spaces are revalidated, not "
          "dropped", "%d region flushes for %d reassigned spaces; see "
          "build/check/%s" % (regions, reassigned, log))


def check_nursery(t):
    """Short-lived processes stay in the nursery: forkstorm's children
    (each lives for well under a millisecond) must run there instead of
    taking a space from another process, as they do without the nursery.
    A process that keeps running without switching away must leave the
    nursery at an exception return: seqrw's fresh pages are then fetched
    ahead (as check_fault_ahead asks without the nursery).
    """
    counts = {}
    for label, accel in [("nursery", "tcg,hspt=on,hspt-nursery=2000"),
                         ("none", "tcg,hspt=on")]:
        log = "guest-nursery-%s.log" % label
        res = boot_hspt_stats(log, ["forkstorm"], accel=accel)
        forks = first_int(r"^HSPT-OUT forkstorm: forkstorm: .*\bforks=(\d+)",
                          res.console)
        young = first_int(r"^nursery: (\d+) switches", res.console)
        reassigned = first_int(r"(\d+) spaces reassigned", res.console)
        counts[label] = (res.ok, forks, young, reassigned, log)
    ok, forks, young, reassigned, log = counts["nursery"]
    ok0, _, young0, reassigned0, log0 = counts["none"]
    t.add(ok and ok0 and forks > 0 and young >= forks and
          reassigned < forks // 4 and young0 == 0 and reassigned0 >= forks,
          "guest: lpae-6.1 hspt: forkstorm's children run in the nursery",
          "%d forks: %d nursery switches, %d spaces reassigned (without the "
          "nursery: %d and %d); see build/check/%s and %s"
          % (forks, young, reassigned, young0, reassigned0, log, log0))

    log = "guest-nursery-seqrw.log"
    res = boot_hspt_stats(log, ["seqrw"], accel="tcg,hspt=on,hspt-nursery=2000")
    buffer_pages, ahead = seqrw_fault_ahead(res)
    promoted = first_int(r"^nursery: \d+ .*, (\d+) promoted", res.console)
    t.add(res.ok and buffer_pages > 0 and promoted > 0 and
          ahead >= buffer_pages // 2,
          "guest: lpae-6.1 hspt: a process leaves the nursery while it runs",
          "%d promoted at an exception return, fault-ahead %d pages for a "
          "buffer of %d; see build/check/%s"
          % (promoted, ahead, buffer_pages, log))


def wait_for_text(path, text, alive, deadline):
    """Wait until the file PATH (a QEMU's serial log) holds TEXT, while
    ALIVE() and until DEADLINE (time.monotonic()); whether it does."""
    while alive() and time.monotonic() <= deadline:
        with open(path, errors="replace") as f:
            if text in f.read():
                return True
        time.sleep(0.1)
    return False


def start_qemu(cmd, log, env=None, stdin=subprocess.DEVNULL):
    """Start QEMU command CMD with its output (the serial console) written
    to the file LOG after the command line, ENV added and STDIN."""
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                stdin=stdin,
                                env=dict(os.environ, **(env or {})))


def stop_qemu(proc, timeout=60):
    """Wait for PROC to exit, killing it after TIMEOUT s; its exit status."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@contextlib.contextmanager
def monitored_qemu(cmd, log, deadline, kill=False):
    """Start QEMU command CMD as start_qemu() does, with an HMP monitor on
    a socket of its own, and yield (the process, the connected socket);
    OSError if none connects by DEADLINE (time.monotonic()). On leaving,
    close the socket and wait for QEMU to exit (with KILL: kill it)."""
    tmp = tempfile.mkdtemp(prefix="hspt-check-")
    path = os.path.join(tmp, "hmp.sock")
    proc = start_qemu(cmd + ["-monitor", "unix:%s,server=on,wait=off" % path],
                      log)
    sock = None
    try:
        sock = hmp_connect(path, lambda: proc.poll() is None, deadline, 60)
        if not sock:
            raise OSError("no monitor socket")
        yield proc, sock
    finally:
        if sock:
            sock.close()
        if kill:
            proc.kill()
        stop_qemu(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def migration_status(info):
    """The status in the output INFO of HMP's info migrate."""
    m = re.search(r"^Migration status: (\S+)", info, re.M)
    return m.group(1) if m else ""


def hmp_command(sock, cmd):
    """Send CMD to an HMP monitor socket and return its output (without
    CMD, only read the greeting up to the first prompt)."""
    if cmd:
        sock.sendall(cmd.encode() + b"\n")
    out = b""
    while not out.endswith(b"(qemu) "):
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out.decode("utf-8", "replace")


def hmp_connect(path, alive, deadline, timeout):
    """Connect to the HMP monitor socket PATH of a QEMU that is starting,
    while ALIVE() and until DEADLINE (time.monotonic()); read its greeting
    and set TIMEOUT. The socket, or None."""

    while alive() and time.monotonic() <= deadline:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            time.sleep(0.1)
            continue
        sock.settimeout(timeout)
        hmp_command(sock, None)
        return sock
    return None


def in_ranges(addr, ranges):
    """Whether ADDR lies in one of RANGES ((low, high) pairs, high
    excluded), the vCPUs' host ranges of shadow_ranges()."""
    return any(lo <= addr < hi for lo, hi in ranges)


def shadow_vmas(pid, ranges, files_only=False):
    """The VMAs of process PID that start inside one of RANGES (only those
    that map a file, guest RAM, if FILES_ONLY)."""
    n = 0
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split()
            start = int(fields[0].split("-", 1)[0], 16)
            n += ((len(fields) > 5 or not files_only) and
                  in_ranges(start, ranges))
    return n


def dumpable_reservations(pid, ranges):
    """How many VMAs of process PID inside RANGES are reservation (no
    file) without MADV_DONTDUMP, which gdb's gcore writes out whole."""
    n, reservation = 0, False
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            fields = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                start = int(fields[0].split("-", 1)[0], 16)
                reservation = len(fields) <= 5 and in_ranges(start, ranges)
            elif reservation and fields[0] == "VmFlags:":
                n += "dd" not in fields[1:]
    return n


def shadow_ranges(info):
    """The host address ranges of the vCPUs' spaces in info hspt text."""
    return [(int(lo, 16), int(hi, 16)) for lo, hi in
            re.findall(r"host range 0x([0-9a-f]+)-0x([0-9a-f]+)", info)]


def check_vma_estimate(t):
    """The VMA estimate of the budget bounds the shadow's real VMAs.

    The budget keeps shadow mappings below vm.max_map_count only if its
    estimate never undercounts: sampled with the vCPUs stopped, while
    processes fork, copy on write, map and unmap, the VMAs inside the
    shadow's host ranges may not exceed the estimate plus the one
    reservation VMA per vCPU. In the same samples every piece of
    reservation, also one put back by an unmap, must be kept out of core
    dumps (MADV_DONTDUMP).
    """

    path = os.path.join(tempfile.mkdtemp(prefix="hspt-check-"), "hmp.sock")
    workloads = ["forkstorm", "cow", "pipering", "mmapchurn", "shpipe"]
    log = os.path.join(LOGDIR, "guest-vma-estimate.log")
    box = {}

    def guest():
        with open(log, "w") as f:
            box["res"] = hsptguest.boot(
                "lpae-6.1", workloads, log=f,
                extra_args=["-accel", "tcg,hspt=on", "-monitor",
                            "unix:%s,server=on,wait=off" % path])

    runner = threading.Thread(target=guest)
    runner.start()
    samples, worst, dumpable, error = 0, None, 0, ""
    sock = None
    try:
        sock = hmp_connect(path, runner.is_alive, time.monotonic() + 30, 30)
        if sock:
            # QEMU's pid: the monitor socket's peer.
            pid = struct.unpack("3i", sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED,
                struct.calcsize("3i")))[0]
            while runner.is_alive():
                hmp_command(sock, "stop")
                try:
                    info = hmp_command(sock, "info hspt")
                    m = re.search(r"at most (\d+) VMAs", info)
                    ranges = shadow_ranges(info)
                    if m and ranges:
                        over = shadow_vmas(pid, ranges) - \
                            (int(m.group(1)) + len(ranges))
                        samples += 1
                        worst = over if worst is None else max(worst, over)
                        dumpable = max(dumpable,
                                       dumpable_reservations(pid, ranges))
                finally:
                    hmp_command(sock, "cont")
                time.sleep(0.2)
    except (OSError, ValueError) as e:
        error = "monitor: %s" % e
    finally:
        if sock:
            sock.close()
        runner.join()
    res = box.get("res")
    if res is not None and res.ok:
        error = ""             # QEMU powered off while we asked
    t.add(res is not None and res.ok and not error and samples >= 5 and
          worst is not None and worst <= 0,
          "guest: lpae-6.1 hspt: the VMA estimate bounds the shadow's VMAs",
          "%d samples, worst excess %s VMAs%s; see %s"
          % (samples, worst, ", " + error if error else "", log))
    t.add(res is not None and res.ok and not error and samples >= 5 and
          dumpable == 0,
          "guest: lpae-6.1 hspt: reservations stay out of core dumps",
          "%d samples, at most %d reservation VMAs without MADV_DONTDUMP"
          % (samples, dumpable))


def check_dump_without_guest_core(t):
    """With -M dump-guest-core=off no guest RAM may reach a core dump of
    QEMU, also not through shadow pages: gdb's gcore of a stopped guest
    with over a thousand shadow pages mapped must hold none of them. Up
    to 0.7.5 such a core held 676 MB of shadow pages."""

    tmp = tempfile.mkdtemp(prefix="hspt-check-")
    core = os.path.join(tmp, "core")
    log = os.path.join(LOGDIR, "guest-dump-guest-core.log")
    cmd = hsptguest.qemu_cmdline("lpae-6.1", ["seqrw", "chase"], reps=50) + [
        # A 64 MiB code buffer keeps the core small (gcore writes it whole).
        "-M", "virt,dump-guest-core=off", "-accel", HSPT_ON + ",tb-size=64"]
    mapped, segments, size, error = 0, None, 0, ""
    try:
        with monitored_qemu(cmd, log, time.monotonic() + 30,
                            kill=True) as (proc, sock):
            deadline = time.monotonic() + 300
            while mapped < 1000 and time.monotonic() < deadline:
                time.sleep(1)
                mapped = first_int(r"^live: (\d+) pages mapped",
                                   hmp_command(sock, "info hspt"))
            if mapped >= 1000:
                hmp_command(sock, "stop")
                ranges = shadow_ranges(hmp_command(sock, "info hspt"))
                rc, out = run(["gdb", "-q", "-batch", "-p", str(proc.pid),
                               "-ex", "gcore " + core],
                              "guest-dump-gcore.log", timeout=600)
                if rc == 0 and os.path.exists(core):
                    size = os.path.getsize(core)
                    _, out = run(["readelf", "-lW", core],
                                 "guest-dump-readelf.log")
                    segments = sum(
                        1 for f in (line.split() for line in out.splitlines())
                        if f and f[0] == "LOAD" and int(f[4], 16) > 0 and
                        in_ranges(int(f[2], 16), ranges))
                else:
                    error = ("gcore failed, see "
                             "build/check/guest-dump-gcore.log")
            else:
                error = "fewer than 1000 pages mapped"
    except (OSError, ValueError) as e:
        error = "monitor: %s" % e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t.add(not error and segments == 0,
          "guest: lpae-6.1 hspt, dump-guest-core=off: no shadow page in a "
          "core dump",
          "%s%d pages mapped, %s shadow segments in a %d MB core; see %s"
          % (error + "; " if error else "", mapped, segments, size >> 20,
             log))


def hmp_wait_status(sock, word, deadline):
    """Poll info status until it names WORD (QEMU paused at a power-off
    with -action shutdown=pause: "shutdown")."""
    while word not in hmp_command(sock, "info status"):
        if time.monotonic() > deadline:
            raise OSError("the guest did not reach '%s'" % word)
        time.sleep(0.2)


def tlbi_test_paused(log, env, at_power_off):
    """Run tlbi-test (lpae, 2 vCPUs, hspt=on) with ENV added, pausing at
    its power-off; then call AT_POWER_OFF(sock, pid, deadline) with an HMP
    socket and quit. Returns (its result, or None, an error text, and the
    serial output)."""

    elf = os.path.join(LOGDIR, "tlbi-test-lpae.elf")
    path = os.path.join(tempfile.mkdtemp(prefix="hspt-check-"), "hmp.sock")
    result, error = None, ""
    with open(log, "w") as f:
        qemu = subprocess.Popen(
            [hsptguest.QEMU_SYSTEM, "-M", "virt", "-cpu", "max", "-smp", "2",
             "-display", "none", "-serial", "stdio", "-kernel", elf,
             "-accel", "tcg,hspt=on", "-action", "shutdown=pause",
             "-monitor", "unix:%s,server=on,wait=on" % path],
            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, **env))
    sock = None
    try:
        deadline = time.monotonic() + 120
        sock = hmp_connect(path, lambda: qemu.poll() is None, deadline, 60)
        if not sock:
            raise OSError("no monitor socket")
        hmp_wait_status(sock, "shutdown", deadline)
        result = at_power_off(sock, qemu.pid, deadline)
        hmp_command(sock, "quit")
    except (OSError, ValueError, AttributeError) as e:
        error = "monitor: %s" % e
    finally:
        if sock:
            sock.close()
        stop_qemu(qemu)
    with open(log, errors="replace") as f:
        return result, error, f.read()


LIVE_PAGES = r"^live: (\d+) pages mapped, (\d+) parked"


def check_reset_wipes_parked(t):
    """A reset leaves no shadow mapping of guest RAM behind, parked pages
    included: no parked page may outlive the RAMBlock it maps, and a
    memory-map change takes the same path. tlbi-test ends with pages
    parked in slots with few mapped pages (those a slot flush unmaps page
    by page); after system_reset at its power-off, info hspt must show no
    page and the shadow's host ranges no file mapping."""
    name = "bare: tlbi-test (lpae), hspt=on: a reset unmaps parked pages too"
    log = os.path.join(LOGDIR, "bare-tlbi-lpae-reset.log")

    def reset(sock, pid, deadline):
        before = re.search(LIVE_PAGES, hmp_command(sock, "info hspt"), re.M)
        # The reset runs in the main loop; the vCPUs stay stopped after it.
        hmp_command(sock, "system_reset")
        time.sleep(1)
        info = hmp_command(sock, "info hspt")
        after = re.search(LIVE_PAGES, info, re.M)
        ranges = shadow_ranges(info)
        return (before.groups() if before else None,
                after.groups() if after else None,
                shadow_vmas(pid, ranges, files_only=True) if ranges else None)

    res, error, _ = tlbi_test_paused(log, {}, reset)
    before, after, files = res or (None, None, None)
    t.add(before is not None and int(before[1]) > 0 and after == ("0", "0")
          and files == 0, name,
          "%s (pages mapped, parked) before the reset %s, after it %s; file "
          "VMAs in the shadow after it %s; see %s"
          % (error, before, after, files, log))


def check_reset_unmap_failure(t):
    """An unmap that fails on another thread than the vCPU's (the reset's
    flush, on the main thread with the vCPUs stopped) moves the vCPU to
    softmmu when it next runs: hspt-preload.so fails the reset's unmaps,
    and tlbi-test, run once more after it, must pass again. Its second
    boot reads a VA that the first left cached as a block over other RAM
    before anything else would switch spaces, so only the switch at
    cpu_exec() entry keeps it from reading the stale block."""
    name = ("bare: tlbi-test (lpae), hspt=on: unmaps failing at a reset "
            "move the vCPUs to softmmu")
    log = os.path.join(LOGDIR, "bare-tlbi-lpae-reset-unmap-fails.log")
    shim = preload_library()
    if not shim:
        t.add(False, name, "see build/check/build-preload.log")
        return
    fail = os.path.join(LOGDIR, "hspt-fail-reserves")
    if os.path.exists(fail):
        os.unlink(fail)

    def reset_failing(sock, pid, deadline):
        open(fail, "w").close()
        try:
            hmp_command(sock, "system_reset")
            time.sleep(1)
        finally:
            os.unlink(fail)
        hmp_command(sock, "cont")
        time.sleep(1)
        hmp_wait_status(sock, "shutdown", deadline)
        return first_int(MOVED_TO_SOFTMMU, hmp_command(sock, "info hspt"))

    moved, error, out = tlbi_test_paused(
        log, {"LD_PRELOAD": shim, "HSPT_FAIL_RESERVE_WHILE": fail},
        reset_failing)
    t.add(moved == 2 and out.count("\nTLBI OK") == 2 and "FAIL" not in out
          and "it continues on softmmu" in out, name,
          "%s vCPUs moved %s, %d runs passed; see %s"
          % (error, moved, out.count("\nTLBI OK"), log))


def check_vma_budget(t, exp):
    """The VMA budget follows vm.max_map_count, faked by the preload
    library: below 8192 hspt=on refuses to start; at 8192 (a budget of 4096
    VMAs, less than the workloads use) spaces are evicted and the guest
    results stay the same."""
    shim = preload_library()
    if not shim:
        t.add(False, "guest: VMA budget", "see build/check/build-preload.log")
        return
    try:
        p = subprocess.run([hsptguest.QEMU_SYSTEM, "-M", "virt", "-display",
                            "none", "-nic", "none", "-accel", "tcg,hspt=on"],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL,
                           env=dict(os.environ, LD_PRELOAD=shim,
                                    HSPT_FAKE_MAX_MAP_COUNT="4096\n"))
        rc, err = p.returncode, p.stderr.strip()
    except subprocess.TimeoutExpired:
        rc, err = -1, "QEMU started (killed after 60 s)"
    t.add(rc == 1 and "hspt=on needs vm.max_map_count >= 8192 (it is 4096)"
          in err, "cli: hspt=on refuses a vm.max_map_count below 8192",
          "rc=%d: %s" % (rc, err))
    workloads = ["forkstorm", "cow", "mmapchurn", "shpipe"]
    log = "guest-vma-budget.log"
    res = boot_hspt_stats(log, workloads,
                          env={"LD_PRELOAD": shim,
                               "HSPT_FAKE_MAX_MAP_COUNT": "8192\n"})
    check_boot(t, "lpae-6.1 hspt, VMA budget 4096", res, workloads, exp)
    evictions = first_int(r"(\d+) evictions for the VMA budget", res.console)
    budget = first_int(r"VMAs \(budget (\d+)\)", res.console)
    t.add(res.ok and budget == 4096 and evictions > 0,
          "guest: lpae-6.1 hspt: a small VMA budget evicts spaces",
          "budget %d, %d evictions; see build/check/%s"
          % (budget, evictions, log))


# What QEMU says of a backend "ram0" that shadow pages cannot map.
RAM0_NOT_SHARED = \
    "hspt: memory backend 'ram0' stays on softmmu: it is not shared"


def check_backend_share(t, exp):
    """Guest RAM from a memory backend with share=off, which no shadow page
    can map, stays on softmmu: QEMU warns, maps nothing and gives the
    results of hspt=off. The vCPUs run softmmu-only code from the start, so
    no access takes a signal (up to 0.7.1 each first touch of a page did,
    until its code moved to softmmu). The same backend with share=on is
    mapped, without a warning."""
    workloads = ["seqrw", "forkstorm", "cow", "smc"]
    warning = RAM0_NOT_SHARED
    notice = "hspt: the guest RAM cannot be shadow-mapped; the vCPUs run on " \
        "softmmu"
    for share in ("off", "on"):
        label = "lpae-6.1 hspt, RAM backend share=%s" % share
        log = "guest-backend-share-%s.log" % share
        res = boot_hspt_stats(log, workloads, extra_args=[
            "-object", "memory-backend-ram,id=ram0,size=512M,share=" + share,
            "-machine", "memory-backend=ram0"])
        check_boot(t, label, res, workloads, exp)
        warned = res.console.count(warning)
        noticed = res.console.count(notice)
        fills = first_int(r"^fills: (\d+) pages", res.console, -1)
        signals = first_int(r"^signals: (\d+) shadow", res.console, -1)
        if share == "off":
            ok = warned == 1 and noticed == 1 and fills == 0 and signals == 0
            what = "one warning, nothing shadow-mapped, no signal"
        else:
            ok = warned == 0 and noticed == 0 and fills > 0
            what = "mapped, no warning"
        t.add(res.ok and ok, "guest: %s: %s" % (label, what),
              "%d + %d warnings, %d fills, %d signals; see build/check/%s"
              % (warned, noticed, fills, signals, log))


def file_has_data(path):
    """Whether the sparse file PATH holds any data (a written block)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
        return True
    except OSError as e:
        if e.errno == errno.ENXIO:
            return False
        raise
    finally:
        os.close(fd)


def check_file_backend_private(t, exp):
    """A memory-backend-file without share=on maps its file privately, as
    in stock QEMU: the guest's writes must not reach the file. hspt=on
    leaves such a backend share=off (on softmmu, with the warning); up to
    0.7.5 it made every backend shared, and a guest run wrote 63 MiB of
    its RAM into the user's file."""
    workloads = ["seqrw", "cow"]
    warning = RAM0_NOT_SHARED
    ram_file = os.path.join(LOGDIR, "file-backend.ram")
    log = "guest-file-backend.log"
    with open(ram_file, "wb") as f:
        f.truncate(512 << 20)
    res = boot_hspt_stats(log, workloads, extra_args=[
        "-object", "memory-backend-file,id=ram0,size=512M,mem-path=" +
        ram_file, "-machine", "memory-backend=ram0"])
    label = "lpae-6.1 hspt, file RAM backend without share=on"
    check_boot(t, label, res, workloads, exp)
    written = file_has_data(ram_file)
    os.unlink(ram_file)
    t.add(res.ok and not written and res.console.count(warning) == 1,
          "guest: %s: the file is left as it was" % label,
          "file %s, %d warnings; see build/check/%s"
          % ("written" if written else "untouched",
             res.console.count(warning), log))


MIGRATION_WORKLOADS = ["seqrw", "cow", "chase", "mmapchurn", "pagecache",
                       "xz", "sqlite", "shpipe"]


def migrate_while_running(sock, uri, deadline, syncs, hold=0.0,
                          postcopy=False):
    """Migrate the running guest behind the HMP socket SOCK to the
    destination listening at URI and hold the switch-over back until the
    source has synced its dirty bitmap SYNCS times and HOLD seconds have
    passed: the guest keeps writing while pages are sent. With POSTCOPY
    the switch-over is to postcopy (both sides need the capability).
    Returns (the final migration status, the dirty sync count, KiB sent
    by postcopy)."""
    # With a 1 ms downtime limit precopy cannot converge while the guest
    # writes; then a generous one lets it switch over at the next sync.
    hmp_command(sock, "migrate_set_parameter downtime-limit 1")
    hmp_command(sock, "migrate -d " + uri)
    status, count, forced, info = "", 0, False, ""
    hold_until = time.monotonic() + hold
    while time.monotonic() <= deadline:
        info = hmp_command(sock, "info migrate")
        status = migration_status(info)
        count = first_int(r"^dirty sync count: (\d+)", info, count)
        # A paused postcopy waits for a recovery that no one starts.
        if status in ("completed", "failed", "cancelled", "postcopy-paused"):
            break
        if count >= syncs and time.monotonic() >= hold_until and not forced:
            hmp_command(sock, "migrate_start_postcopy" if postcopy else
                        "migrate_set_parameter downtime-limit 60000")
            forced = True
        time.sleep(0.05)
    return status, count, first_int(r"^postcopy ram: (\d+) kbytes", info)


def migrate_live(src_cmd, dst_cmd, logs, ready, hold=0.0,
                 dst_stdin=subprocess.DEVNULL, postcopy=False, dst_env=None):
    """Start QEMU command DST_CMD (DST_ENV added) waiting for a migration,
    then SRC_CMD, consoles in LOGS[1] and LOGS[0]; once the source's
    console shows READY, migrate it live while its guest runs, holding the
    switch-over back for 4 dirty-bitmap syncs and HOLD seconds (with
    POSTCOPY: switching to postcopy after the first sync). Returns the
    destination (still running; standard input DST_STDIN) and a dict: the
    migration's status, its dirty syncs, the KiB sent by postcopy, the
    source's shadow pages write-protected meanwhile, and what went wrong
    with the monitor."""

    tmp = tempfile.mkdtemp(prefix="hspt-check-")
    uri = "unix:" + os.path.join(tmp, "migrate.sock")
    dst = start_qemu(dst_cmd + ["-incoming", uri], logs[1], env=dst_env,
                     stdin=dst_stdin)
    # The destination listens before the source may connect.
    while not os.path.exists(uri[len("unix:"):]) and dst.poll() is None:
        time.sleep(0.05)
    out = {"status": "", "syncs": 0, "postcopy_kb": 0, "protects": 0,
           "error": ""}
    deadline = time.monotonic() + 600
    try:
        with monitored_qemu(src_cmd, logs[0], deadline) as (src, sock):
            if not wait_for_text(logs[0], ready, lambda: src.poll() is None,
                                 deadline):
                raise OSError("the source never printed %r" % ready)
            before = first_int(r"^write-protects: (\d+)",
                               hmp_command(sock, "info hspt"))
            out["status"], out["syncs"], out["postcopy_kb"] = \
                migrate_while_running(sock, uri, deadline,
                                      syncs=1 if postcopy else 4, hold=hold,
                                      postcopy=postcopy)
            out["protects"] = first_int(r"^write-protects: (\d+)",
                                        hmp_command(sock, "info hspt")) - \
                before
            hmp_command(sock, "quit")
    except (OSError, ValueError) as e:
        out["error"] = "monitor: %s; " % e
    return dst, out


def migrated_guest(dst, mig, logs, start):
    """Wait for the destination DST of migrate_live() (MIG, LOGS) to end;
    return the BootResult of the guest started at START, from both
    consoles, and the destination's log."""
    # A destination with stale memory tends to hang: do not wait long.
    rc = stop_qemu(dst, timeout=240 if mig["status"] == "completed" else 5)
    # The serial console goes on at the destination where the source
    # stopped; the first lines of each log are the command lines.
    # A line may begin at the source and end at the destination.
    text = ""
    for path in logs:
        with open(path, errors="replace") as f:
            text += f.read().split("\n", 1)[1]
    console = hsptguest.ConsoleParser(start)
    console.feed_text(text)
    res = console.result("" if rc == 0 else "destination QEMU exited "
                         "with status %d" % rc, time.monotonic() - start)
    with open(logs[1], errors="replace") as f:
        return res, f.read()


def check_live_migration(t, exp, kernel, smp, dst_hspt):
    """Live migration from hspt=on keeps the guest's memory.

    Migration's dirty log relies on write protection: each dirty-bitmap
    sync clears the pages' migration bits and write-protects them through
    tlb_reset_dirty(), and a store to such a page must take the slow path
    that marks it dirty again. A shadow page left writable lets direct
    stores bypass that, the page is not sent again, and the destination
    resumes with stale memory. The source runs memory-writing workloads
    and is migrated while they run (switch-over after a few syncs); the
    destination (hspt=on if DST_HSPT, else off: the stream must not
    depend on it) finishes them. Every workload's checksum must match,
    and the source's shadow must have been write-protected meanwhile."""
    label = "%s smp%d migrated from hspt=on to hspt=%s" % (
        kernel, smp, "on" if dst_hspt else "off")
    name = ("state: %s: switch-over while the workloads ran, the shadow "
            "write-protected for the dirty log" % label)
    logs = [os.path.join(LOGDIR, "state-migrate-%s-smp%d-%s.log"
                         % (kernel, smp, side)) for side in ("src", "dst")]
    workloads = MIGRATION_WORKLOADS
    accel = ["-accel", "tcg,hspt=on"]
    start = time.monotonic()
    dst, mig = migrate_live(
        hsptguest.qemu_cmdline(kernel, workloads, smp=smp, extra_args=accel),
        hsptguest.qemu_cmdline(kernel, workloads, smp=smp,
                               extra_args=accel if dst_hspt else []),
        logs, "HSPT-BOOT")
    res, dst_out = migrated_guest(dst, mig, logs, start)
    finished_at_dst = "HSPT-RESULT" in dst_out
    check_boot(t, label, res, workloads, exp, stage="state")
    t.add(not mig["error"] and mig["status"] == "completed" and
          mig["syncs"] >= 4 and mig["protects"] > 0 and finished_at_dst,
          name, "%smigration %s after %d dirty syncs, %d shadow pages "
          "write-protected meanwhile, workloads finished at the "
          "destination: %s; see %s"
          % (mig["error"], mig["status"] or "not started", mig["syncs"],
             mig["protects"], finished_at_dst, " and ".join(logs)))


def check_postcopy_migration(t, exp):
    """Postcopy migration into hspt=on brings every page in.

    After the switch to postcopy the destination runs while pages it has
    not received are holes in its RAM file, which userfaultfd catches only
    in QEMU's own mapping. A direct access through a shadow page filled
    such a hole with zeros: the page's arrival then failed (EEXIST), the
    migration paused and the guest hung (up to 0.7.6). HSPT now maps
    nothing until postcopy has ended. lpae-6.1 runs the memory-writing
    workloads, is migrated with postcopy while they run, and must finish
    them at the destination with the right checksums; the destination's
    info hspt must show fills refused during postcopy and made after."""
    kernel = "lpae-6.1"
    label = "%s migrated by postcopy, hspt=on to hspt=on" % kernel
    logs = [os.path.join(LOGDIR, "state-postcopy-%s-%s.log" % (kernel, side))
            for side in ("src", "dst")]
    workloads = MIGRATION_WORKLOADS
    args = ["-accel", "tcg,hspt=on", "-global", "migration.x-postcopy-ram=on"]
    cmd = hsptguest.qemu_cmdline(kernel, workloads, extra_args=args)
    start = time.monotonic()
    dst, mig = migrate_live(cmd, cmd, logs, "HSPT-BOOT", postcopy=True,
                            dst_env={"QEMU_HSPT_STATS": "1"})
    res, dst_out = migrated_guest(dst, mig, logs, start)
    check_boot(t, label, res, workloads, exp, stage="state")
    refused = first_int(r"^migration: .*, (\d+) fills refused", dst_out)
    fills = first_int(r"^fills: (\d+) pages", dst_out)
    t.add(not mig["error"] and mig["status"] == "completed" and
          mig["postcopy_kb"] > 0 and "HSPT-RESULT" in dst_out and
          refused > 0 and fills > 0,
          "state: %s: pages came in by postcopy, none shadow-mapped before "
          "it ended" % label,
          "%smigration %s after %d dirty syncs, %d KiB by postcopy, "
          "workloads finished at the destination: %s, fills refused during "
          "postcopy %d, fills %d; see %s"
          % (mig["error"], mig["status"] or "not started", mig["syncs"],
             mig["postcopy_kb"], "HSPT-RESULT" in dst_out, refused, fills,
             " and ".join(logs)))


def check_migration_bare(t):
    """Live migration loses no store, checked by the guest itself.

    migrate-test (bare metal) stores a counter into a few pages in every
    round and first checks that they hold the last one; nothing ever
    flushes their translations. It is migrated from hspt=on to hspt=on
    after one second and 4 dirty syncs, then told through its console to
    stop: a page whose store the dirty log missed lags behind the counter
    at the destination. Also from hspt=off to hspt=off, the reference."""
    elf = bare_elf_or_fail(t, "state", "migrate-test")
    if not elf:
        return
    for label, accel in BARE_CONFIGS[:2]:
        name = ("state: migrate-test, %s to %s: no store lost"
                % (label, label))
        logs = [os.path.join(LOGDIR, "state-migrate-bare-%s-%s.log"
                             % (label.replace("=", "-"), side))
                for side in ("src", "dst")]
        cmd = [hsptguest.QEMU_SYSTEM, "-M", "virt", "-cpu", "max",
               "-display", "none", "-monitor", "none", "-serial", "stdio",
               "-kernel", elf] + accel
        dst, mig = migrate_live(cmd, cmd, logs, "MIGRATE READY", hold=1.0,
                                dst_stdin=subprocess.PIPE)
        try:
            if mig["status"] == "completed":
                time.sleep(0.5)
                dst.stdin.write(b"q")
            dst.stdin.close()
        except OSError:
            pass                # it stopped by itself: a FAIL line says why
        rc = stop_qemu(dst, timeout=60 if mig["status"] == "completed"
                       else 5)
        with open(logs[1], errors="replace") as f:
            out = f.read()
        t.add(not mig["error"] and mig["status"] == "completed" and
              rc == 0 and "MIGRATE OK" in out and "FAIL" not in out and
              (mig["protects"] > 0 or not accel), name,
              "%smigration %s, %d shadow pages write-protected, rc=%d: %s; "
              "see %s" % (mig["error"], mig["status"] or "not started",
                          mig["protects"], rc,
                          " | ".join(line for line in out.splitlines()
                                     if "FAIL" in line or "MIGRATE" in line),
                          " and ".join(logs)))


def check_background_snapshot(t):
    """A background snapshot saves guest RAM as it was when the VM stopped.

    With the background-snapshot capability QEMU stops the VM, saves the
    devices, write-protects guest RAM through userfaultfd in its own
    mapping and resumes the guest, saving each page before the guest's
    first write to it. Direct stores through shadow pages bypassed that
    protection, so the file held pages newer than the saved CPU state (up
    to 0.7.6). migrate-test stores a counter into 16 pages in every round
    and checks them against it: loaded from the snapshot file into a new
    QEMU, it must go on and print MIGRATE OK. hspt=off is the reference;
    with hspt=on, info hspt must show the vCPU kept off its shadow."""
    elf = bare_elf_or_fail(t, "state", "migrate-test")
    if not elf:
        return
    for label, accel in BARE_CONFIGS[:2]:
        name = "state: migrate-test, %s: a background snapshot loads back" \
            % label
        tmp = tempfile.mkdtemp(prefix="hspt-check-")
        snap = os.path.join(tmp, "snap")
        logs = [os.path.join(LOGDIR, "state-bg-snapshot-%s-%s.log"
                             % (label.replace("=", "-"), side))
                for side in ("save", "load")]
        cmd = [hsptguest.QEMU_SYSTEM, "-M", "virt", "-cpu", "max",
               "-display", "none", "-serial", "stdio", "-kernel", elf] + accel
        status, held, error = "", 0, ""
        deadline = time.monotonic() + 120
        try:
            with monitored_qemu(cmd, logs[0], deadline) as (src, sock):
                if not wait_for_text(logs[0], "MIGRATE READY",
                                     lambda: src.poll() is None, deadline):
                    raise OSError("the guest did not start")
                time.sleep(1)
                hmp_command(sock,
                            "migrate_set_capability background-snapshot on")
                hmp_command(sock, "migrate -d file:" + snap)
                while time.monotonic() <= deadline and \
                        status not in ("completed", "failed", "cancelled"):
                    time.sleep(0.1)
                    status = migration_status(hmp_command(sock,
                                                          "info migrate"))
                held = first_int(r"^migration: (\d+) times a vCPU kept off",
                                 hmp_command(sock, "info hspt"))
                hmp_command(sock, "quit")
        except (OSError, ValueError) as e:
            error = "monitor: %s; " % e
        out, rc = "", -1
        if status == "completed":
            dst = start_qemu(cmd + ["-monitor", "none", "-incoming",
                                    "file:" + snap], logs[1],
                             stdin=subprocess.PIPE)
            time.sleep(2)
            try:
                dst.stdin.write(b"q")
                dst.stdin.close()
            except OSError:
                pass            # it stopped by itself: a FAIL line says why
            rc = stop_qemu(dst, timeout=60)
            with open(logs[1], errors="replace") as f:
                out = f.read()
        shutil.rmtree(tmp, ignore_errors=True)
        t.add(not error and status == "completed" and rc == 0 and
              "MIGRATE OK" in out and "FAIL" not in out and
              (held > 0 or not accel), name,
              "%ssnapshot %s, %d times a vCPU kept off its shadow "
              "meanwhile, load rc=%d: %s; see %s"
              % (error, status or "not started", held, rc,
                 " | ".join(line for line in out.splitlines()
                            if "FAIL" in line or "MIGRATE" in line),
                 " and ".join(logs)))


class GdbRemote:
    """Just enough of the GDB remote protocol to drive QEMU's gdbstub."""

    def __init__(self, path, timeout):

        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        self.sock.close()

    def reply(self):
        """The payload of the next packet from the stub, acknowledged
        (its own acknowledgements of ours are skipped)."""
        while True:
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start) if start >= 0 else -1
            if end >= 0 and len(self.buf) >= end + 3:
                payload = self.buf[start + 1:end]
                self.buf = self.buf[end + 3:]
                self.sock.sendall(b"+")
                return payload.decode("ascii", "replace")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("the gdbstub closed the connection")
            self.buf += chunk

    def request(self, payload):
        """Send PAYLOAD as a packet and return the stub's reply (for "c",
        the stop reply: it comes when the guest stops)."""
        data = payload.encode("ascii")
        self.sock.sendall(b"$%s#%02x" % (data, sum(data) % 256))
        return self.reply()


def elf_symbol(elf, name):
    """The address of symbol NAME in ELF (arm-linux-gnueabihf-nm)."""
    out = subprocess.run(["arm-linux-gnueabihf-nm", elf], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"^([0-9a-f]+) \w %s$" % re.escape(name), out, re.M)
    if not m:
        raise ValueError("no symbol %s in %s" % (name, elf))
    return int(m.group(1), 16)


def watchpoint_session(gdb, watched, stop_flag):
    """With the guest stopped at GDB's connection: a write watchpoint and
    then a read watchpoint on address WATCHED must each stop the running
    guest; then set the word at STOP_FLAG and detach. Returns a list of
    what went wrong."""
    problems = []
    for insert, kind in (("2", "watch"), ("3", "rwatch")):
        spec = "%x,4" % watched
        if gdb.request("Z%s,%s" % (insert, spec)) != "OK":
            problems.append("Z%s refused" % insert)
            continue
        try:
            stop = gdb.request("c")
        except TimeoutError:
            # Stop the guest for what follows.
            gdb.sock.sendall(b"\x03")
            stop = gdb.reply() + " (no stop: interrupted)"
        if ";%s:%x;" % (kind, watched) not in stop:
            problems.append("%s watchpoint: stop reply %r" % (kind, stop))
        if gdb.request("z%s,%s" % (insert, spec)) != "OK":
            problems.append("z%s refused" % insert)
    if gdb.request("M%x,4:01000000" % stop_flag) != "OK":
        problems.append("writing the stop flag was refused")
    if gdb.request("D") != "OK":
        problems.append("detach refused")
    return problems


def check_gdb_watchpoints(t):
    """gdbstub watchpoints stop a loop whose page is shadow-mapped.

    watch-test increments a word in a loop; once it runs (and its page
    is shadow-mapped writable with hspt=on), a write and then a read
    watchpoint set through the gdbstub must each stop the guest, which
    then finishes when the debugger sets its stop flag. Also with
    hspt=off, the reference."""

    elf = bare_elf_or_fail(t, "state", "watch-test")
    if not elf:
        return
    watched = elf_symbol(elf, "watched")
    stop_flag = elf_symbol(elf, "stop_flag")
    for label, accel in BARE_CONFIGS[:2]:
        name = "state: gdbstub watchpoints stop the guest, %s" % label
        log = os.path.join(LOGDIR, "state-watch-%s.log"
                           % label.replace("=", "-"))
        path = os.path.join(tempfile.mkdtemp(prefix="hspt-check-"),
                            "gdb.sock")
        qemu = start_qemu([hsptguest.QEMU_SYSTEM, "-M", "virt", "-cpu", "max",
                           "-display", "none", "-monitor", "none",
                           "-serial", "stdio", "-kernel", elf,
                           "-gdb", "unix:%s,server=on,wait=off" % path] +
                          accel, log, env={"QEMU_HSPT_STATS": "1"})
        problems, gdb = [], None
        try:
            if not wait_for_text(log, "WATCH READY",
                                 lambda: qemu.poll() is None,
                                 time.monotonic() + 60):
                raise OSError("the guest did not start its loop")
            # Long enough for the loop to be translated and its page
            # shadow-mapped.
            time.sleep(0.5)
            gdb = GdbRemote(path, timeout=20)
            gdb.request("?")
            problems = watchpoint_session(gdb, watched, stop_flag)
        except (OSError, ValueError) as e:
            problems.append("gdbstub: %s" % e)
        finally:
            if gdb:
                gdb.close()
        rc = stop_qemu(qemu)
        with open(log, errors="replace") as f:
            out = f.read()
        fills = first_int(r"^fills: (\d+) pages", out)
        t.add(not problems and rc == 0 and "WATCH DONE" in out and
              (fills > 0 or not accel), name,
              "%s; rc=%d, fills=%d, see %s"
              % ("; ".join(problems) or "no protocol errors", rc, fills, log))


class Qmp:
    """A QMP client on a unix socket: commands in, results out, events
    skipped."""

    def __init__(self, path, timeout):

        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self._message()                          # the greeting
        self.command("qmp_capabilities")

    def close(self):
        self.file.close()
        self.sock.close()

    def _message(self):
        line = self.file.readline()
        if not line:
            raise OSError("QMP closed the connection")
        return json.loads(line)

    def command(self, name, args=None):
        """Run NAME with the ARGS dict; its return value."""
        self.sock.sendall(json.dumps({"execute": name,
                                      "arguments": args or {}})
                          .encode() + b"\n")
        while True:
            msg = self._message()
            if "error" in msg:
                raise ValueError("%s: %s" % (name, msg["error"]["desc"]))
            if "return" in msg:
                return msg["return"]

    def job(self, name, args, deadline):
        """Run the job command NAME with ARGS (a dict with its job-id) and
        wait for it until DEADLINE (time.monotonic()); raise ValueError if
        it failed."""
        self.command(name, args)
        job_id = args["job-id"]
        while time.monotonic() <= deadline:
            job = [j for j in self.command("query-jobs") if j["id"] == job_id]
            if job and job[0]["status"] == "concluded":
                self.command("job-dismiss", {"id": job_id})
                if "error" in job[0]:
                    raise ValueError("%s: %s" % (name, job[0]["error"]))
                return
            time.sleep(0.1)
        raise OSError("%s did not finish" % name)


def qmp_connect(path, alive, deadline, timeout):
    """A Qmp client on the socket PATH of a QEMU that is starting, while
    ALIVE() and until DEADLINE (time.monotonic()), or None."""
    while alive() and time.monotonic() <= deadline:
        try:
            return Qmp(path, timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(0.1)
    return None


def count_results(path, offset=0):
    """How many HSPT-RESULT lines the serial log PATH holds past byte
    OFFSET."""
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().count(b"\nHSPT-RESULT ")


SNAPSHOT_WORKLOADS = ["seqrw", "cow", "forkstorm", "pipering", "mmapchurn",
                      "pagecache", "shpipe"]


def check_snapshot_reload(t, exp, kernel, smp):
    """Loading a snapshot into a running hspt=on guest.

    A snapshot is saved after the first workload, the guest runs two more
    (new processes, page tables and contexts in the shadow's spaces), and
    the snapshot is loaded back. Loading rewrites guest RAM under the
    shadow pages (they map that RAM) and the translation registers behind
    HSPT's back: no space may keep a translation of the abandoned
    timeline. The console of the timeline that counts (up to the save,
    then from the load) must give every workload's expected checksum.
    The snapshot goes to a qcow2 image that QEMU itself creates."""

    label = "%s hspt smp%d snapshot reloaded" % (kernel, smp)
    name = "state: %s: saved and loaded while the workloads ran" % label
    tmp = tempfile.mkdtemp(prefix="hspt-check-")
    disk = os.path.join(tmp, "snapshots.qcow2")
    open(disk, "wb").close()
    qmp_path = os.path.join(tmp, "qmp.sock")
    log = os.path.join(LOGDIR, "state-snapshot-%s-smp%d.log" % (kernel, smp))
    workloads = SNAPSHOT_WORKLOADS
    qemu = start_qemu(hsptguest.qemu_cmdline(
        kernel, workloads, smp=smp, extra_args=[
            "-accel", "tcg,hspt=on",
            "-qmp", "unix:%s,server=on,wait=off" % qmp_path,
            "-blockdev", "driver=file,filename=%s,node-name=file0" % disk]),
        log)
    alive = lambda: qemu.poll() is None  # noqa: E731
    snapshot = {"tag": "hspt", "vmstate": "disk0", "devices": ["disk0"]}
    error, abandoned, offsets = "", 0, None
    qmp = None
    start = time.monotonic()
    try:
        deadline = start + 600
        qmp = qmp_connect(qmp_path, alive, deadline, 120)
        if not qmp:
            raise OSError("no QMP socket")
        qmp.job("blockdev-create", {"job-id": "create", "options": {
            "driver": "qcow2", "file": "file0", "size": 64 << 20}}, deadline)
        qmp.command("blockdev-add", {"driver": "qcow2", "node-name": "disk0",
                                     "file": "file0"})
        while alive() and count_results(log) < 1:
            time.sleep(0.1)
        # Stopped, the log ends exactly where the snapshot's console does.
        qmp.command("stop")
        saved_at = os.path.getsize(log)
        qmp.job("snapshot-save", dict(snapshot, **{"job-id": "save"}),
                deadline)
        qmp.command("cont")
        while alive() and count_results(log, saved_at) < 2:
            time.sleep(0.1)
        qmp.command("stop")
        loaded_at = os.path.getsize(log)
        abandoned = count_results(log, saved_at)
        qmp.job("snapshot-load", dict(snapshot, **{"job-id": "load"}),
                deadline)
        qmp.command("cont")
        offsets = (saved_at, loaded_at)
    except (OSError, ValueError) as e:
        error = "QMP: %s; " % e
    finally:
        if qmp:
            qmp.close()
    rc = stop_qemu(qemu, timeout=240 if offsets else 5)
    with open(log, "rb") as f:
        text = f.read()
    if offsets:
        text = text[:offsets[0]] + text[offsets[1]:]
    console = hsptguest.ConsoleParser(start)
    console.feed_text(text.decode("utf-8", "replace").split("\n", 1)[1])
    res = console.result("" if rc == 0 else "QEMU exited with status %d" % rc,
                         time.monotonic() - start)
    check_boot(t, label, res, workloads, exp, stage="state")
    t.add(not error and offsets is not None and abandoned >= 2, name,
          "%s%d workloads finished between the save and the load; see %s"
          % (error, abandoned, log))


def stage_state(t):
    exp = load_expected()
    check_gdb_watchpoints(t)
    check_migration_bare(t)
    check_postcopy_migration(t, exp)
    check_background_snapshot(t)
    # MTTCG on the DACR-switching kernel: dirty-log resets reach two
    # vCPUs, each with a space per DACR value of every process.
    for kernel, smp, dst_hspt in (("lpae-6.1", 1, True),
                                  ("armmp-6.1", 2, True),
                                  ("lpae-6.1", 1, False)):
        check_live_migration(t, exp, kernel, smp, dst_hspt)
    for kernel, smp in (("lpae-6.1", 1), ("armmp-6.1", 2)):
        check_snapshot_reload(t, exp, kernel, smp)


def update_expected():
    """Regenerate expected.txt from the reference kernel (hspt off)."""
    res = hsptguest.boot(REFERENCE_KERNEL, hsptguest.WORKLOADS)
    if not res.ok or any(r.status for r in res.results):
        print(res.console[-4000:])
        sys.exit("update-expected: the reference run failed: " + res.error)
    with open(EXPECTED, "w") as f:
        f.write("# md5 of each workload's stdout at size 'test'; generated by\n"
                "# tests/hspt/check.py --update-expected (kernel %s, hspt off)\n"
                % REFERENCE_KERNEL)
        for r in res.results:
            f.write("%s %s\n" % (r.name, r.checksum))
    print("wrote " + EXPECTED)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated stages: " + ",".join(STAGES))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2,
                    help="guest boots in parallel")
    ap.add_argument("--update-expected", action="store_true")
    args = ap.parse_args()
    os.makedirs(LOGDIR, exist_ok=True)
    if args.update_expected:
        return update_expected()
    stages = args.only.split(",") if args.only else STAGES
    t = Tally()
    for stage in stages:
        if stage not in STAGES:
            sys.exit("unknown stage %s (have: %s)" % (stage, ", ".join(STAGES)))
        start = time.monotonic()
        print("=== %s" % stage, flush=True)
        if stage == "guest":
            stage_guest(t, args.jobs)
        else:
            globals()["stage_" + stage](t)
        print("=== %s took %.0f s" % (stage, time.monotonic() - start), flush=True)
    if t.failed:
        print("\nFailed:\n  " + "\n  ".join(t.failed))
    print("%d passed, %d failed" % (t.passed, len(t.failed)))
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
