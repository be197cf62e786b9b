"""``python -m roarm_lab.ros2 export SRC OUT.mcap [--policy EXPORT_DIR]`` (also ``roarm-export-mcap`` and
``scripts/export_mcap.py``): errors are one line on stderr and exit status 2, so a wrong folder never ends in a
traceback."""

from __future__ import annotations

import argparse
import sys

from roarm_lab.ros2.mcap_export import TOPICS, ExportError, export


def _add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="a rollout folder (play.py --record-rollouts DIR) or a real-arm run folder "
                               "(run_real.py writes one per run under --log-dir)")
    p.add_argument("out", help="the .mcap file to write (replaced atomically if it exists)")
    p.add_argument("--policy", metavar="EXPORT_DIR",
                   help="rollouts only: the exported/ folder (or its policy.json) the rollouts were played with; "
                        "default: policy.json in SRC")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m roarm_lab.ros2",
                                description="ROS 2 tools that need no ROS install.")
    sub = p.add_subparsers(dest="command", required=True)
    _add_export_args(sub.add_parser(
        "export", help="write rollouts or a real-arm run as one MCAP file of ROS 2 messages",
        description=f"Write rollouts or a real-arm run as one MCAP file of ROS 2 messages "
                    f"({', '.join(TOPICS)}), for Foxglove Studio or ros2 bag."))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = export(args.src, args.out, args.policy)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    written = ", ".join(f"{topic} {n}" for topic, n in result.counts.items())
    print(f"wrote {result.path} ({result.kind}): {written} messages")
    return 0


def export_main(argv: list[str] | None = None) -> int:
    """The export alone (``roarm-export-mcap``, ``scripts/export_mcap.py``)."""
    return main(["export", *(sys.argv[1:] if argv is None else argv)])
