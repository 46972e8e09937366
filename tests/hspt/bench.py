#!/usr/bin/python3
"""`make bench`: the guest workloads on several emulator configurations.

Each configuration is LABEL=EMULATOR [ARGS...]; every repetition boots each
configuration once, one after the other, and runs all workloads at size
"bench". With --paired the configurations of a repetition boot at the same
time, once per workload, each pinned to a host CPU of its own (they swap
CPUs from one repetition to the next), and each ratio is the median of
the repetitions' own ratios: on a host whose speed drifts, runs at the
same moment see the same host. Pinned, a QEMU pays no host TLB
shootdowns to another CPU, which an unpinned one with hspt=on most
likely does (docs/hspt.rst, "Pinned against unpinned").
Reported per workload: the median in-guest time over the repetitions and its
ratio to the first (baseline) configuration; "boot" is host wall time from
QEMU's start to the guest's init. "cpu-user" and "cpu-sys" are the CPU
time the whole QEMU process spent in user mode and in the host kernel
(boot and all workloads): on a host whose speed drifts they tell where a
configuration's time goes better than the wall times do. Static workloads
also run under user-mode QEMU (configuration "user") for reference.

Writes raw.csv (every run), summary.csv, ratios.png (gnuplot) and the
boot logs to build/bench, or to the directory given with --out (so that
one run's results need not replace another's).

Later comparisons use --config, e.g.
  --config 'off=build/qemu-system-arm -accel tcg,hspt=off' \\
  --config 'on=build/qemu-system-arm -accel tcg,hspt=on'
"""

import argparse
import csv
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hsptguest  # noqa: E402

OUTDIR = os.path.join(hsptguest.BUILD, "bench")
DEBIAN_QEMU = "/usr/bin/qemu-system-arm"


def default_configs():
    # The same binary with HSPT off (the baseline) and on.
    configs = [("off", [hsptguest.QEMU_SYSTEM]),
               ("hspt", [hsptguest.QEMU_SYSTEM, "-accel",
                         "tcg,hspt=on"])]
    if os.path.exists(DEBIAN_QEMU):
        ver = subprocess.run([DEBIAN_QEMU, "--version"], capture_output=True,
                             text=True).stdout.split()
        label = "debian-" + (ver[3] if len(ver) > 3 else "qemu")
        configs.append((label, [DEBIAN_QEMU]))
    return configs


def parse_config(text):
    label, sep, cmd = text.partition("=")
    if not sep or not cmd.strip():
        raise argparse.ArgumentTypeError("--config wants LABEL=EMULATOR [ARGS...]")
    argv = shlex.split(cmd)
    if not os.path.isabs(argv[0]):
        argv[0] = os.path.join(hsptguest.REPO, argv[0])
    return label, argv


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", type=parse_config, default=[],
                    help="LABEL=EMULATOR [ARGS...]; repeatable; first is the baseline")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kernel", default="lpae-6.1")
    ap.add_argument("--smp", type=int, default=1)
    ap.add_argument("--size", default="bench", choices=["test", "bench"])
    ap.add_argument("--workloads", default=",".join(hsptguest.WORKLOADS))
    ap.add_argument("--no-user", action="store_true",
                    help="skip the user-mode reference runs")
    ap.add_argument("--paired", action="store_true",
                    help="boot the configurations of a repetition at the "
                         "same time, once per workload, each pinned to a "
                         "host CPU of its own (rotating), and report "
                         "medians of the per-repetition ratios; no "
                         "cpu-user/cpu-sys rows")
    ap.add_argument("--out", default=OUTDIR,
                    help="directory for the CSVs, plot and logs "
                         "(default: %(default)s)")
    args = ap.parse_args()
    outdir = args.out

    configs = args.config or default_configs()
    workloads = args.workloads.split(",")
    os.makedirs(outdir, exist_ok=True)
    raw = []          # (config, workload, rep, seconds)
    cpus = sorted(os.sched_getaffinity(0))
    if args.paired and len(configs) > len(cpus):
        sys.exit("bench: --paired needs a host CPU per configuration "
                 "(%d configurations, %d CPUs)" % (len(configs), len(cpus)))
    for rep in range(1, args.reps + 1):
        if args.paired:
            raw += run_paired(configs, rep, cpus, args, workloads, outdir)
        else:
            raw += run_in_turn(configs, rep, args, workloads, outdir)
        if not args.no_user and os.path.exists(hsptguest.QEMU_USER):
            for name in workloads:
                if name in hsptguest.USER_MODE_WORKLOADS:
                    rc, secs, _ = hsptguest.run_user(name, args.size)
                    if rc != 0:
                        sys.exit("bench: user-mode %s failed" % name)
                    raw.append(("user", name, rep, secs))

    labels = [c[0] for c in configs]
    if any(r[0] == "user" for r in raw):
        labels.append("user")
    rows = ["boot"] + workloads
    if not args.paired:
        rows += ["cpu-user", "cpu-sys"]
    med = {}
    for label in labels:
        for name in rows:
            vals = [r[3] for r in raw if r[0] == label and r[1] == name]
            if vals:
                med[label, name] = statistics.median(vals)
    base = labels[0]
    seconds = {(r[0], r[1], r[2]): r[3] for r in raw}
    ratio = {}      # > 1 means the configuration is faster than the baseline
    for label in labels[1:]:
        for name in rows:
            if args.paired and label != "user":
                vals = [seconds[base, name, rep] / seconds[label, name, rep]
                        for rep in range(1, args.reps + 1)
                        if seconds.get((label, name, rep)) and
                        (base, name, rep) in seconds]
                if vals:
                    ratio[label, name] = statistics.median(vals)
            elif (label, name) in med and med.get((base, name)):
                ratio[label, name] = med[base, name] / med[label, name]

    with open(os.path.join(outdir, "raw.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config", "workload", "rep", "seconds"])
        w.writerows(raw)
    header = ["workload"] + ["%s s" % l for l in labels] + \
             ["%s/%s" % (base, l) for l in labels[1:]]
    table = []
    for name in rows:
        row = [name]
        for l in labels:
            row.append("%.3f" % med[l, name] if (l, name) in med else "-")
        for l in labels[1:]:
            row.append("%.2f" % ratio[l, name] if (l, name) in ratio else "-")
        table.append(row)
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(table)

    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    print("\nMedians of %d repetition(s), kernel %s, -smp %d, size %s; "
          "ratio = baseline time / config time (> 1: config faster)%s"
          % (args.reps, args.kernel, args.smp, args.size,
             "; paired: configurations side by side, one CPU each, ratios "
             "are medians of each repetition's ratio" if args.paired else ""))
    for label, argv in configs:
        print("  %s: %s" % (label, shlex.join(argv)))
    for row in [header] + table:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))
    plot(labels, rows, ratio, outdir)
    print("\nwrote %s/raw.csv, summary.csv, ratios.png" % outdir)
    return 0


def result_rows(label, rep, res, logname, boot=True):
    """The raw.csv rows of boot result RES (with its boot time if BOOT);
    exits if the boot or a workload failed (RES None: no result)."""
    if not res or not res.ok or any(r.status for r in res.results):
        sys.exit("bench: %s failed (%s); see %s"
                 % (label, (res.error or "workload error") if res
                    else "no result", logname))
    rows = [(label, "boot", rep, res.boot_seconds)] if boot else []
    return rows + [(label, r.name, rep, r.seconds) for r in res.results]


def run_in_turn(configs, rep, args, workloads, outdir):
    """Boot the configurations one after the other."""
    raw = []
    for label, argv in configs:
        print("rep %d/%d: %s ..." % (rep, args.reps, label), flush=True)
        logname = os.path.join(outdir, "%s-%d.log" % (label, rep))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(logname, "w") as log:
            res = hsptguest.boot(args.kernel, workloads, size=args.size,
                                 smp=args.smp, qemu=argv[0],
                                 extra_args=argv[1:], timeout=7200, log=log)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        raw += result_rows(label, rep, res, logname)
        raw.append((label, "cpu-user", rep,
                    after.ru_utime - before.ru_utime))
        raw.append((label, "cpu-sys", rep,
                    after.ru_stime - before.ru_stime))
    return raw


def run_paired(configs, rep, cpus, args, workloads, outdir):
    """Boot every configuration at once, each on a CPU of its own, once per
    workload, so that the runs compared are the ones under way at the
    same moment (a boot running all workloads in turn would drift apart
    at the first workload that one configuration runs faster).

    Configurations swap CPUs from one repetition to the next, so that a
    slower CPU does not always count against the same one. A child
    process inherits the affinity of the thread that starts it. The
    "boot" row is the first workload's boot."""
    raw = []
    for name in workloads:
        results = [None] * len(configs)

        def one(i, label, argv):
            cpu = cpus[(i + rep) % len(cpus)]
            os.sched_setaffinity(0, {cpu})
            with open(paired_log(outdir, label, rep, name), "w") as log:
                log.write("# pinned to host CPU %d\n" % cpu)
                results[i] = hsptguest.boot(args.kernel, [name],
                                            size=args.size, smp=args.smp,
                                            qemu=argv[0],
                                            extra_args=argv[1:],
                                            timeout=7200, log=log)

        print("rep %d/%d: %s, %s at once ..."
              % (rep, args.reps, name, ", ".join(c[0] for c in configs)),
              flush=True)
        threads = [threading.Thread(target=one, args=(i, label, argv))
                   for i, (label, argv) in enumerate(configs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for (label, _), res in zip(configs, results):
            raw += result_rows(label, rep, res,
                               paired_log(outdir, label, rep, name),
                               boot=name == workloads[0])
    return raw


def paired_log(outdir, label, rep, workload):
    return os.path.join(outdir, "%s-%d-%s.log" % (label, rep, workload))


def plot(labels, rows, ratio, outdir):
    """Bar chart of speed relative to the baseline, one group per workload."""
    if not shutil.which("gnuplot") or len(labels) < 2:
        return
    base = labels[0]
    dat = os.path.join(outdir, "ratios.dat")
    with open(dat, "w") as f:
        f.write("workload " + " ".join(labels[1:]) + "\n")
        for name in rows:
            if not any((l, name) in ratio for l in labels[1:]):
                continue
            vals = ["%.4f" % ratio[l, name] if (l, name) in ratio else "NaN"
                    for l in labels[1:]]
            f.write(name + " " + " ".join(vals) + "\n")
    script = "\n".join([
        "set terminal pngcairo size 1200,600 noenhanced" if _has_cairo() else
        "set terminal png size 1200,600 noenhanced",
        "set output '%s'" % os.path.join(outdir, "ratios.png"),
        "set title 'Speed relative to %s (median; > 1 is faster)'" % base,
        "set style data histograms", "set style fill solid 0.8 border -1",
        "set xtics rotate by -45", "set grid ytics", "set key top left",
        "set yrange [0:*]", "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2",
        "plot " + ", ".join("'%s' using %d:xtic(1) title columnhead" % (dat, i + 2)
                           for i in range(len(labels) - 1)),
    ])
    subprocess.run(["gnuplot"], input=script, text=True, check=False)


def _has_cairo():
    out = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True,
                         text=True)
    return "pngcairo" in out.stdout + out.stderr


if __name__ == "__main__":
    sys.exit(main())
