# Copyright (c) mmrsrefseg contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn

from mmrsrefseg.utils.lora import LoRADropout, inject_lora


def _mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))


def test_inject_lora_uses_lora_dropout():
    torch.manual_seed(0)
    model = _mlp()
    matched = inject_lora(model, ['0', '2'], rank=4, alpha=8, dropout=0.1)
    assert matched == ['0', '2']
    drops = [m for m in model.modules() if isinstance(m, LoRADropout)]
    assert len(drops) == 2 and all(d.p == 0.1 for d in drops)
    assert not any(type(m) is nn.Dropout for m in model.modules())
    # no dropout: peft's Identity stays
    plain = _mlp()
    inject_lora(plain, ['0'], rank=4, dropout=0.0)
    assert not any(isinstance(m, LoRADropout) for m in plain.modules())


def test_lora_dropout_function_and_gradient():
    torch.manual_seed(0)
    drop = LoRADropout(0.25)
    x = torch.rand(512, 256) + 0.5  # no exact zeros in the input
    x.requires_grad_(True)
    y = drop(x)
    kept = y != 0
    # kept elements are scaled by 1 / (1 - p), about p of them are dropped
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    assert abs((~kept).float().mean().item() - 0.25) < 0.01
    y.backward(torch.full_like(y, 2.0))
    expected = torch.where(kept, torch.full_like(x, 2 / 0.75),
                           torch.zeros_like(x))
    torch.testing.assert_close(x.grad, expected)
    # eval: identity, same tensor
    drop.eval()
    assert drop(x) is x


def test_lora_dropout_keeps_a_one_byte_mask():
    """Autograd keeps a bool mask, where nn.Dropout on CPU keeps floats."""

    def saved(module):
        dtypes = []

        def pack(t):
            dtypes.append((t.dtype, t.numel()))
            return t

        x = torch.randn(1000, 64, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            module(x)
        return dtypes

    assert saved(LoRADropout(0.1)) == [(torch.bool, 64000)]
    assert all(dtype == torch.float32 for dtype, _ in saved(nn.Dropout(0.1)))


@pytest.mark.parametrize('p', [-0.1, 1.0])
def test_lora_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match='LoRA dropout'):
        LoRADropout(p)
