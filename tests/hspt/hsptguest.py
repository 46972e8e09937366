"""Boot the qemu-hspt ARM guest kit and collect workload results.

Used by `make run`, `make shell`, check.py and bench.py. The guest's init
(tests/hspt/guest/init) prints machine-readable HSPT-* lines on the serial
console; this module turns a boot into a list of WorkloadResult.
"""

import dataclasses
import os
import re
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, "build")
GUEST = os.path.join(BUILD, "guest")
# md5 of each workload's output at size "test" (hspt=off, the reference kernel)
EXPECTED = os.path.join(REPO, "tests", "hspt", "guest", "expected.txt")
QEMU_SYSTEM = os.path.join(BUILD, "qemu-system-arm")
QEMU_USER = os.path.join(BUILD, "qemu-arm")

# Every workload of the kit, in the order they run. The real-program ones
# are scripts in /usr/lib/hspt; the others are hspt-wl subcommands.
WORKLOADS = [
    "seqrw", "chase", "compute", "forkstorm", "pipering", "mmapchurn", "cow",
    "smc", "unaligned", "alignfix", "atomics", "kaddr", "devmem", "pagecache",
    "xz", "sqlite", "shpipe",
]
# Workloads that are plain static programs and also run under qemu-arm.
USER_MODE_WORKLOADS = ["seqrw", "chase", "compute", "forkstorm", "pipering",
                       "mmapchurn", "cow", "smc", "unaligned", "atomics",
                       "pagecache"]

RESULT_RE = re.compile(r"^HSPT-RESULT (\S+) (\d+) status=(\d+) sum=(\S+) us=(\d+)")
BOOT_RE = re.compile(r"^HSPT-BOOT uptime=([\d.]+)")


@dataclasses.dataclass
class WorkloadResult:
    name: str
    rep: int
    status: int
    checksum: str
    seconds: float
    output: list


@dataclasses.dataclass
class BootResult:
    ok: bool                 # QEMU exited 0 and init reported HSPT-DONE
    error: str               # why not, if not ok
    results: list            # WorkloadResult, in run order
    boot_seconds: float      # host wall time from start to HSPT-BOOT
    wall_seconds: float      # host wall time of the whole QEMU run
    console: str             # everything QEMU printed


def load_expected():
    """{workload: md5 of its output at size "test"}; empty without the file."""
    exp = {}
    if os.path.exists(EXPECTED):
        with open(EXPECTED) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    name, md5 = line.split()
                    exp[name] = md5
    return exp


def kernels():
    """Kernel ids of the kit, in kernels.txt order."""
    with open(os.path.join(GUEST, "kernels.txt")) as f:
        return [line.split()[0] for line in f if line.strip()]


def qemu_cmdline(kernel, workloads, size="test", reps=1, smp=1,
                 qemu=QEMU_SYSTEM, extra_args=(), memory="512M",
                 interactive=False):
    append = ["console=ttyAMA0", "quiet", "hspt.size=" + size,
              "hspt.reps=%d" % reps, "hspt.run=" + ",".join(workloads)]
    cmd = [qemu, "-M", "virt", "-cpu", "cortex-a15", "-m", memory,
           "-smp", str(smp), "-nic", "none", "-no-reboot",
           "-kernel", os.path.join(GUEST, "vmlinuz-" + kernel),
           "-initrd", os.path.join(GUEST, "initrd.img"),
           "-append", " ".join(append)]
    if interactive:
        cmd += ["-nographic"]
    else:
        cmd += ["-display", "none", "-monitor", "none", "-serial", "stdio"]
    return cmd + list(extra_args)


class ConsoleParser:
    """Collects the HSPT-* lines of a guest console, fed one line at a time
    (the console of one QEMU, or of a migration's source and then its
    destination)."""

    def __init__(self, start):
        self.start = start          # time.monotonic() of QEMU's start
        self.lines, self.results = [], []
        self.boot_seconds = None
        self.done = False
        self._outputs = {}

    def feed(self, line):
        self.lines.append(line)
        if BOOT_RE.match(line) and self.boot_seconds is None:
            self.boot_seconds = time.monotonic() - self.start
        if line.startswith("HSPT-OUT "):
            name, _, text = line[len("HSPT-OUT "):].partition(": ")
            self._outputs.setdefault(name, []).append(text)
        m = RESULT_RE.match(line)
        if m:
            name = m.group(1)
            self.results.append(WorkloadResult(
                name, int(m.group(2)), int(m.group(3)), m.group(4),
                int(m.group(5)) / 1e6, self._outputs.pop(name, [])))
        if line.startswith("HSPT-DONE"):
            self.done = True

    def feed_text(self, text):
        """Feed every line of TEXT (a console captured whole)."""
        for line in text.split("\n"):
            self.feed(line.rstrip("\r"))

    def result(self, error, wall):
        """The BootResult; ERROR: QEMU's failure, if any."""
        if not error and not self.done:
            error = "the guest did not finish (no HSPT-DONE)"
        return BootResult(not error, error, self.results,
                          self.boot_seconds or 0.0, wall,
                          "\n".join(self.lines))


def boot(kernel, workloads, size="test", reps=1, smp=1, qemu=QEMU_SYSTEM,
         extra_args=(), timeout=900, log=None, env=None):
    """Boot KERNEL, run WORKLOADS and return a BootResult.

    ENV: extra environment variables for QEMU."""
    cmd = qemu_cmdline(kernel, workloads, size, reps, smp, qemu, extra_args)
    if log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **env) if env else None)
    console = ConsoleParser(start)
    error = ""
    try:
        deadline = start + timeout
        for raw in _readlines(proc, deadline):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            console.feed(line)
            if log:
                log.write(line + "\n")
        if time.monotonic() > deadline:
            error = "timed out after %d s" % timeout
            proc.kill()
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - start
    if not error and rc != 0:
        error = "QEMU exited with status %d" % rc
    if log:
        log.flush()
    return console.result(error, wall)


def _readlines(proc, deadline):
    """Yield QEMU's output lines until EOF or DEADLINE (monotonic)."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if not sel.select(timeout=min(left, 5)):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            if buf:
                yield buf
            return
        buf += chunk
        *complete, buf = buf.split(b"\n")
        yield from complete


def run_user(workload, size="test", qemu=QEMU_USER, timeout=900):
    """Run a static workload under user-mode QEMU: (status, seconds, stdout)."""
    exe = os.path.join(GUEST, "rootfs", "usr", "bin", "hspt-wl")
    start = time.monotonic()
    proc = subprocess.run([qemu, exe, workload, size], capture_output=True,
                          timeout=timeout, env=dict(os.environ, HSPT_TMP="/tmp"))
    return proc.returncode, time.monotonic() - start, proc.stdout.decode()


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="boot and run demo workloads")
    demo.add_argument("--kernel", default="lpae-6.1")
    demo.add_argument("workloads", nargs="*", default=["seqrw", "sqlite"])
    sh = sub.add_parser("shell", help="boot to an interactive guest shell")
    sh.add_argument("--kernel", default="lpae-6.1")
    sh.add_argument("--smp", type=int, default=1)
    # Everything after "--" goes to QEMU.
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    args = ap.parse_args(argv)
    if args.cmd == "shell":
        cmd = qemu_cmdline(args.kernel, ["shell"], smp=args.smp,
                           extra_args=extra, interactive=True)
        print("$ " + shlex.join(cmd) + "\n(Ctrl-A x quits QEMU)", flush=True)
        os.execv(cmd[0], cmd)
    print("Booting %s on %s with workloads %s ..." %
          (args.kernel, os.path.relpath(QEMU_SYSTEM), ", ".join(args.workloads)),
          flush=True)
    res = boot(args.kernel, args.workloads, extra_args=extra)
    print("boot to userspace: %.1f s, whole run: %.1f s" %
          (res.boot_seconds, res.wall_seconds))
    for r in res.results:
        print("\n== %s: %s in %.2f s (output md5 %s)" %
              (r.name, "ok" if r.status == 0 else "FAILED status %d" % r.status,
               r.seconds, r.checksum))
        for line in r.output:
            print("   " + line)
    if not res.ok:
        print("\nerror: " + res.error + "\n" + res.console[-3000:], file=sys.stderr)
        return 1
    return 0 if all(r.status == 0 for r in res.results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
