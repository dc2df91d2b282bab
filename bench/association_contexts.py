#!/usr/bin/env python3
"""What choosing the presentation contexts costs per association, now that every storage class is accepted.

pynetdicom copies the acceptor's supported contexts for every association. Rounds alternate, in one process:
  all-on-the-AE  what supporting every storage class on the AE would cost: a deepcopy of 170 contexts in 16 syntaxes
  old-list       the node's former 21 classes on the AE: a deepcopy of 21 contexts
  per-proposal   `contexts.contexts_for` on the classes a sender proposes (dcmtk storescu's default list, 120 classes
                 for a worst case; PACS propose only what they send), plus the deepcopy of Verification alone
Prints the median milliseconds per association and the ratios to old-list.

    PYTHONPATH=. .venv/bin/python bench/association_contexts.py [--rounds 7 --repeat 20]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pynetdicom import AllStoragePresentationContexts, StoragePresentationContexts  # noqa: E402
from pynetdicom.presentation import build_context  # noqa: E402

from bench.dataset_checks import per_call_us  # noqa: E402
from dicom_node.net.contexts import TRANSFER_SYNTAXES, VERIFICATION, SopClassFilter, contexts_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    every = [build_context(cx.abstract_syntax, list(TRANSFER_SYNTAXES)) for cx in AllStoragePresentationContexts]
    old = every[:21]
    proposed = [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
    verification = [build_context(VERIFICATION)]
    accepted = SopClassFilter()
    contexts_for(proposed, accepted)  # each class's context is built once per process
    cases = {
        "all-on-the-AE": lambda: copy.deepcopy(every),
        "old-list": lambda: copy.deepcopy(old),
        "per-proposal": lambda: (copy.deepcopy(verification), contexts_for(proposed, accepted)),
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            timings[name].append(per_call_us(case, args.repeat) / 1e3)
    reference = statistics.median(timings["old-list"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:14s} {median:8.2f} ms/association  {median / reference:6.2f}x old-list")


if __name__ == "__main__":
    main()
