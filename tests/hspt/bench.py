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

Before and after the runs it measures what the host charges for the
system calls, faults and signals a shadow page costs (tests/hspt/hostcost,
pinned) and prints them under the table (hostcost.csv): HSPT's ratios
follow those costs, which drift on a shared host, more than anything in
QEMU.

Every configuration of a repetition must print the same checksum for each
workload, and at size "test" the one in tests/hspt/guest/expected.txt:
a faster wrong answer is not a result, so bench stops there.

--sweep runs the configurations at several guest setups other than the
default one (more RAM and highmem, RAM above 4 GiB, other CPUs, -smp 2
and 4; see SWEEP) and prints one ratio table with a column per setup,
marking ratios below CLIFF (0.33) with "!": a cliff that the default
setup does not show (both of 0.7.3's fixes were found off it).
Setups with one vCPU run --paired if asked; the SMP ones always run in
turn, so that each QEMU has all host CPUs. `make bench-sweep` runs it at
size "test", one repetition.

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
CLIFF = 0.33

# --sweep's guest setups: (label, kernel, -smp, QEMU arguments before each
# configuration's own). The first is the default one, for reference.
SWEEP = [
    ("512M", "lpae-6.1", 1, []),
    ("1G", "lpae-6.1", 1, ["-m", "1G"]),                # highmem, kmap
    ("4G", "lpae-6.12", 1, ["-m", "4G"]),               # RAM above 4 GiB
    ("a7", "armmp-6.1", 1, ["-cpu", "cortex-a7", "-m", "768M"]),
    ("max", "lpae-6.1", 1, ["-cpu", "max", "-m", "1536M"]),
    ("smp2", "lpae-6.1", 2, []),                        # IS broadcasts
    ("smp4", "armmp-6.1", 4, ["-m", "1G"]),
]
DEBIAN_QEMU = "/usr/bin/qemu-system-arm"
HOSTCOST_SRC = os.path.join(hsptguest.REPO, "tests", "hspt", "hostcost",
                            "hostcost.c")
# Pages per hostcost run: about a second on the slowest host seen.
HOSTCOST_PAGES = 5000


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
    ap.add_argument("--sweep", action="store_true",
                    help="run at every guest setup of SWEEP (ignores "
                         "--kernel and --smp) and print one table of "
                         "ratios, a column per setup")
    ap.add_argument("--out", default=OUTDIR,
                    help="directory for the CSVs, plot and logs "
                         "(default: %(default)s)")
    args = ap.parse_args()
    configs = args.config or default_configs()
    workloads = args.workloads.split(",")
    cpus = sorted(os.sched_getaffinity(0))
    if args.paired and len(configs) > len(cpus):
        sys.exit("bench: --paired needs a host CPU per configuration "
                 "(%d configurations, %d CPUs)" % (len(configs), len(cpus)))
    os.makedirs(args.out, exist_ok=True)
    costs_before = host_costs(args.out, cpus[-1])
    if args.sweep:
        return sweep(configs, workloads, cpus, args, costs_before)

    raw = run_setup(configs, workloads, cpus, args, args.kernel, args.smp,
                    [], args.paired, args.out)
    costs_after = host_costs(args.out, cpus[-1])
    labels = [c[0] for c in configs]
    if any(r[0] == "user" for r in raw):
        labels.append("user")
    rows = ["boot"] + workloads
    if not args.paired:
        rows += ["cpu-user", "cpu-sys"]
    med, ratio = medians_and_ratios(raw, labels, rows, args.paired,
                                    args.reps)
    base = labels[0]
    outdir = args.out
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

    print("\nMedians of %d repetition(s), kernel %s, -smp %d, size %s; "
          "ratio = baseline time / config time (> 1: config faster)%s"
          % (args.reps, args.kernel, args.smp, args.size,
             "; paired: configurations side by side, one CPU each, ratios "
             "are medians of each repetition's ratio" if args.paired else ""))
    for label, argv in configs:
        print("  %s: %s" % (label, shlex.join(argv)))
    print_table(header, table)
    print_host_costs(costs_before, costs_after, outdir)
    plot(labels, rows, ratio, outdir)
    print("\nwrote %s/raw.csv, summary.csv, ratios.png%s" % (
        outdir, ", hostcost.csv" if costs_before or costs_after else ""))
    return 0


def run_setup(configs, workloads, cpus, args, kernel, smp, setup_args,
              paired, outdir):
    """Every repetition of CONFIGS at one guest setup (KERNEL, SMP, QEMU
    arguments SETUP_ARGS before each configuration's own); the raw rows
    (config, workload, rep, seconds)."""
    configs = [(label, argv[:1] + setup_args + argv[1:])
               for label, argv in configs]
    run = argparse.Namespace(**dict(vars(args), kernel=kernel, smp=smp))
    expected = hsptguest.load_expected() if args.size == "test" else {}
    raw = []
    for rep in range(1, args.reps + 1):
        sums = {}
        if paired:
            raw += run_paired(configs, rep, cpus, run, workloads, outdir,
                              sums)
        else:
            raw += run_in_turn(configs, rep, run, workloads, outdir, sums)
        check_sums(sums, expected, rep, outdir)
        if not args.no_user and os.path.exists(hsptguest.QEMU_USER):
            for name in workloads:
                if name in hsptguest.USER_MODE_WORKLOADS:
                    rc, secs, _ = hsptguest.run_user(name, args.size)
                    if rc != 0:
                        sys.exit("bench: user-mode %s failed" % name)
                    raw.append(("user", name, rep, secs))
    return raw


def check_sums(sums, expected, rep, outdir):
    """Exit unless every configuration gave each workload the same checksum
    (SUMS: {workload: {config: checksum}}), the one in EXPECTED if it has
    one (at size "test")."""
    for name, by_config in sums.items():
        want = expected.get(name) or next(iter(by_config.values()))
        wrong = {label: c for label, c in by_config.items() if c != want}
        if wrong:
            sys.exit("bench: %s printed checksum(s) %s for %s (rep %d), "
                     "expected %s; see the logs in %s"
                     % (", ".join(sorted(wrong)),
                        ", ".join(sorted(set(wrong.values()))), name, rep,
                        want, outdir))


def medians_and_ratios(raw, labels, rows, paired, reps):
    """Per (label, row): the median seconds, and for every label but the
    first the ratio baseline time / label time (> 1: faster than the
    baseline); PAIRED: the median of the repetitions' own ratios."""
    med = {}
    for label in labels:
        for name in rows:
            vals = [r[3] for r in raw if r[0] == label and r[1] == name]
            if vals:
                med[label, name] = statistics.median(vals)
    base = labels[0]
    seconds = {(r[0], r[1], r[2]): r[3] for r in raw}
    ratio = {}
    for label in labels[1:]:
        for name in rows:
            if paired and label != "user":
                vals = [seconds[base, name, rep] / seconds[label, name, rep]
                        for rep in range(1, reps + 1)
                        if seconds.get((label, name, rep)) and
                        (base, name, rep) in seconds]
                if vals:
                    ratio[label, name] = statistics.median(vals)
            elif (label, name) in med and med.get((base, name)):
                ratio[label, name] = med[base, name] / med[label, name]
    return med, ratio


def host_costs(outdir, cpu):
    """What this host charges now for the operations a shadow page costs:
    tests/hspt/hostcost's lines as {label: microseconds}, run pinned to
    CPU; empty (with a note) if it does not build or run. HSPT's ratios
    move with these figures more than with anything in QEMU, so every
    bench prints them."""
    exe = os.path.join(outdir, "hostcost")
    try:
        if (not os.path.exists(exe) or
                os.path.getmtime(exe) < os.path.getmtime(HOSTCOST_SRC)):
            subprocess.run(["cc", "-O2", "-o", exe, HOSTCOST_SRC],
                           check=True, capture_output=True)
        out = subprocess.run([exe, str(HOSTCOST_PAGES)], check=True,
                             capture_output=True, text=True,
                             preexec_fn=lambda: os.sched_setaffinity(0, [cpu]),
                             timeout=300).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print("bench: no host costs (%s)" % e, file=sys.stderr)
        return {}
    costs = {}
    for line in out.splitlines():
        label, _, value = line.rstrip().rpartition(" ")
        if value == "us":
            label, _, value = label.rstrip().rpartition(" ")
            costs[label.strip()] = float(value)
    return costs


def print_host_costs(before, after, outdir):
    """The host costs measured before and after the runs, also written to
    OUTDIR/hostcost.csv."""
    if not before and not after:
        return
    labels = list(before) + [l for l in after if l not in before]
    table = [[l] + ["%.2f" % c[l] if l in c else "-" for c in (before, after)]
             for l in labels]
    header = ["host cost (us)", "before", "after"]
    with open(os.path.join(outdir, "hostcost.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(table)
    print("\nHost costs (tests/hspt/hostcost, %d pages, pinned), before and "
          "after the runs:" % HOSTCOST_PAGES)
    print_table(header, table)


def print_table(header, table):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    for row in [header] + table:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


def setup_text(kernel, smp, setup_args):
    return " ".join([kernel, "-smp", str(smp)] + setup_args)


def sweep(configs, workloads, cpus, args, costs_before):
    """--sweep: every configuration at every setup of SWEEP; one table of
    ratios with a column per (setup, configuration but the baseline).
    COSTS_BEFORE: host_costs() before the first setup."""
    labels = [c[0] for c in configs]
    rows = ["boot"] + workloads
    columns, cells = [], {}
    for setup, kernel, smp, setup_args in SWEEP:
        outdir = os.path.join(args.out, setup)
        os.makedirs(outdir, exist_ok=True)
        paired = args.paired and smp == 1
        print("setup %s: %s%s" % (setup, setup_text(kernel, smp, setup_args),
                                  ", paired" if paired else ""), flush=True)
        raw = run_setup(configs, workloads, cpus, args, kernel, smp,
                        setup_args, paired, outdir)
        _, ratio = medians_and_ratios(raw, labels, rows, paired, args.reps)
        for label in labels[1:]:
            col = setup if len(labels) == 2 else "%s %s" % (setup, label)
            columns.append(col)
            for name in rows:
                if (label, name) in ratio:
                    cells[col, name] = ratio[label, name]
    cliffs = ["%s %s %.2f" % (col, name, r)
              for (col, name), r in cells.items() if r < CLIFF]
    header = ["workload"] + columns
    table = [[name] + ["%.2f%s" % (cells[c, name],
                                   "!" if cells[c, name] < CLIFF else "")
                       if (c, name) in cells else "-" for c in columns]
             for name in rows]
    with open(os.path.join(args.out, "sweep.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(table)
    print("\nSweep: %d repetition(s), size %s; ratio = %s time / %s time "
          "(> 1: faster), checksums identical everywhere; setups:"
          % (args.reps, args.size, labels[0], "/".join(labels[1:])))
    for setup, kernel, smp, setup_args in SWEEP:
        print("  %s: %s" % (setup, setup_text(kernel, smp, setup_args)))
    for label, argv in configs:
        print("  %s: %s" % (label, shlex.join(argv)))
    print_table(header, table)
    print_host_costs(costs_before, host_costs(args.out, cpus[-1]), args.out)
    print("\n%s\nwrote %s/sweep.csv and each setup's logs"
          % ("cliffs (ratio below %.2f): %s" % (CLIFF, "; ".join(cliffs))
             if cliffs else "no ratio below %.2f" % CLIFF, args.out))
    return 0


def result_rows(label, rep, res, logname, sums, boot=True):
    """The raw.csv rows of boot result RES (with its boot time if BOOT),
    its checksums recorded in SUMS; exits if the boot or a workload failed
    (RES None: no result)."""
    if not res or not res.ok or any(r.status for r in res.results):
        sys.exit("bench: %s failed (%s); see %s"
                 % (label, (res.error or "workload error") if res
                    else "no result", logname))
    for r in res.results:
        sums.setdefault(r.name, {})[label] = r.checksum
    rows = [(label, "boot", rep, res.boot_seconds)] if boot else []
    return rows + [(label, r.name, rep, r.seconds) for r in res.results]


def run_in_turn(configs, rep, args, workloads, outdir, sums):
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
        raw += result_rows(label, rep, res, logname, sums)
        raw.append((label, "cpu-user", rep,
                    after.ru_utime - before.ru_utime))
        raw.append((label, "cpu-sys", rep,
                    after.ru_stime - before.ru_stime))
    return raw


def run_paired(configs, rep, cpus, args, workloads, outdir, sums):
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
                               sums, boot=name == workloads[0])
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
