"""Write the compiled MuJoCo model to a file: ``python -m roarm_lab.assets.export_mjcf OUT.xml``."""

from __future__ import annotations

import argparse

from roarm_lab.assets.mjcf import DEFAULT_PHYSICS_DT, model_to_xml
from roarm_lab.utils.io import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", help="output .xml path")
    parser.add_argument("--dt", type=float, default=DEFAULT_PHYSICS_DT, help="physics step (s)")
    args = parser.parse_args(argv)
    atomic_write_text(args.out, model_to_xml(args.dt))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
