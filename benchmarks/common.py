"""What every SST-2 benchmark here sets up: its command line (--ckpt, --repeats, --json), torch's threads, the
checkpoint's model, SST-2 dev as evaluation batches, and the model's analog layers."""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from noisesim import checkpoints  # noqa: E402
from noisesim.data import EvalBatches, encode, load_table  # noqa: E402
from noisesim.methods import adapters_of  # noqa: E402


def sst2_bench(description: str):
    """(args, backbone, table, batches, adapters) for a benchmark whose docstring is ``description``."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default="sst2-grasp")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    backbone = checkpoints.build(checkpoints.read(args.ckpt))
    table = load_table("sst2-dev")
    batches = EvalBatches.build(encode(table, backbone.tokenizer, 128, "sst2-dev"), backbone.tokenizer.pad_token_id, 64)
    return args, backbone, table, batches, adapters_of(backbone.model)
