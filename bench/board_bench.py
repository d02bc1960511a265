"""Board link throughput: GEMMs through the whole board design (UART -> host link -> engine ->
UART) in RTL simulation on Verilator, driven by the real host library; writes
bench/results/board.{json,md}. Times are simulated time at the board's clock and baud rate,
i.e. what a real board takes minus USB latency."""

import json
import sys
from pathlib import Path

from systolix.board.sim import run_board
from systolix.board.top import BoardConfig
from systolix.config import Dataflow, EngineConfig, SystolicConfig

ROOT = Path(__file__).resolve().parent.parent
SEED = 2026

ENGINE = EngineConfig(SystolicConfig(4, 4, Dataflow.OUTPUT_STATIONARY), 16, 16, 16)
RUNS = [
    (BoardConfig(ENGINE, 25_000_000, 115200), [[3, 5, 4]]),
    (BoardConfig(ENGINE, 25_000_000, 1_000_000, timeout_ms=1.0), [[3, 5, 4], [16, 16, 16]]),
    (BoardConfig(ENGINE, 12_000_000, 3_000_000, timeout_ms=0.2),
     [[3, 5, 4], [16, 16, 16], [32, 32, 32]]),
]


def main(simulator="verilator"):
    rows = []
    for config, shapes in RUNS:
        out = run_board(config, {"name": "gemm", "shapes": shapes}, simulator,
                        ROOT / "sim_out" / "bench", seed=SEED)
        if not out["passed"]:
            sys.exit(f"{config.name}: {out['failures']} (log {out['log']})")
        for m in out["measurements"]:
            line_bytes = (m["bytes_out"] + m["bytes_in"])
            rows.append({"clk_mhz": config.clk_hz / 1e6, "baud": config.baud,
                         "shape": m["shape"], "bytes_out": m["bytes_out"],
                         "bytes_in": m["bytes_in"], "sim_ms": m["sim_seconds"] * 1e3,
                         "line_ms": line_bytes * 10 / config.baud * 1e3,
                         "macs_per_s": m["macs_per_second"], "exact": m["exact"],
                         "wall_s": m["wall_seconds"]})
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "board.json").write_text(json.dumps({"engine": ENGINE.name, "seed": SEED,
                                                "simulator": simulator, "runs": rows},
                                               indent=1) + "\n")
    lines = [f"Board link: {ENGINE.name} behind the UART, {simulator}, seed {SEED}; times are "
             f"simulated (board time), host library in the loop.", "",
             "| clock | baud | M x K x N | bytes out | bytes in | GEMM time | line time of "
             "those bytes | MAC/s | exact | wall (s) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clk_mhz']:g} MHz | {r['baud']:,} | {'x'.join(map(str, r['shape']))} "
                     f"| {r['bytes_out']:,} | {r['bytes_in']:,} | {r['sim_ms']:.2f} ms | "
                     f"{r['line_ms']:.2f} ms | {r['macs_per_s']:,.0f} | "
                     f"{'yes' if r['exact'] else 'NO'} | {r['wall_s']:.1f} |")
    (res / "board.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:])
