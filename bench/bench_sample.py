"""`archdsl sample` on a ResNet-50-sized space: 1,000 designs in under 10 s on one core.

    python bench/bench_sample.py [-n 1000] [--seed 0]

The space is ResNet-50's layout with its unit (basic or bottleneck), stem width, stage depths
and 3x3 groups free: its default design is ResNet-50 itself. The time is CPU time of this
process (``time.process_time``), from the spec's text to the CSV text of every design;
the breakdown separates loading the spec once, elaborating the designs and their figures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from archdsl import sampling  # noqa: E402

TARGET_S = 10.0
SPACE = f'''import "{ROOT / "specs" / "lib" / "resnet.arch"}"
network resnet_space(classes = 1000, unit = choice([bottleneck, basic]), width = choice([64, 32, 48, 80]),
                     depths = [int_range(1, 4, default=3), int_range(1, 6, default=4),
                               int_range(2, 8, default=6), int_range(1, 4, default=3)],
                     groups = choice([1, 2, 4])) {{
    input image: [3, 224, 224]
    conv1: conv(width, 7, stride=2, pad=3, bias=false) -> bn1: bn -> relu -> maxpool: maxpool(3, stride=2, pad=1)
    for i, n in enumerate(depths) {{
        let planes = width * 2**i
        layer{{i+1}}: {{
            let stride = 1 if i == 0 else 2
            if unit == bottleneck {{
                unit(planes, stride=stride, groups=groups) -> unit(planes, groups=groups) * (n - 1)
            }}
            else {{ unit(planes, stride=stride) -> unit(planes) * (n - 1) }}
        }}
    }}
    avgpool: global_avgpool -> flatten -> fc: linear(classes)
    require params < 40_000_000, "under 40M parameters"
}}
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.process_time()
    space = sampling.open_space(SPACE)
    t1 = time.process_time()
    designs = list(sampling._designs(space, args.n, args.seed))
    t2 = time.process_time()
    s = sampling.Sample("resnet_space", space.space)
    for values, result in designs:
        s.add(values, result)
    sampling.to_csv([s])
    t3 = time.process_time()
    total = t3 - t0
    print("invalid:", dict(s.errors.most_common()))
    print(f"{args.n:,} designs of a ResNet-50-sized space ({len(s.valid):,} valid): {total:.2f} s CPU "
          f"(load {t1 - t0:.2f} s, elaborate {t2 - t1:.2f} s, figures and CSV {t3 - t2:.2f} s); "
          f"{1000 * total / args.n:.1f} ms a design; target {TARGET_S:g} s for 1,000: "
          f"{'met' if total * 1000 / args.n < TARGET_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
