"""Weights both ways between wgtrain and PyTorch, for tests/interop.rs (needs torch and safetensors).

    python3 tools/torch_roundtrip.py --model lenet5 --classes 10 --input x.safetensors \
        --wgtrain-weights exported.safetensors --out DIR [--seed 0]

- wgtrain -> PyTorch: builds the model (tools/torch_model.py), loads `--wgtrain-weights` with
  `load_state_dict(strict=True)` and writes its eval-mode logits on the input (tensor `x`, N x C
  x H x W, already normalised) to DIR/logits_of_wgtrain_weights.safetensors (tensor `logits`).
- PyTorch -> wgtrain: a model of PyTorch's own random initialisation (seeded; batch norm's
  weight, bias and running statistics randomised too, so eval-mode batch norm is not the
  identity) saved with `safetensors.torch.save_file(model.state_dict())` as
  DIR/torch_init.safetensors, and its logits on the input as DIR/torch_logits.safetensors.
"""

import argparse
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import build  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--input", required=True, help="safetensors file with tensor x (N, C, H, W)")
    p.add_argument("--wgtrain-weights", help="a file of `wgtrain export` to load strictly")
    p.add_argument("--out", required=True, help="folder for the outputs")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_grad_enabled(False)
    x = load_file(a.input)["x"].float()
    c, h, w = x.shape[1:]
    os.makedirs(a.out, exist_ok=True)

    if a.wgtrain_weights:
        model = build(a.model, c, a.classes, (h, w))
        model.load_state_dict(load_file(a.wgtrain_weights), strict=True)
        model.eval()
        save_file({"logits": model(x).contiguous()}, os.path.join(a.out, "logits_of_wgtrain_weights.safetensors"))

    torch.manual_seed(a.seed)
    model = build(a.model, c, a.classes, (h, w))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(a.out, "torch_init.safetensors"))
    save_file({"logits": model(x).contiguous()}, os.path.join(a.out, "torch_logits.safetensors"))
    print(f"{a.model}: ok")


if __name__ == "__main__":
    main()
