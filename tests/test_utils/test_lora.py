# Copyright (c) mmrsrefseg contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn

from mmrsrefseg.utils.lora import (LoRADropout, MergedEvalLoRALinear,
                                   inject_lora)


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


def _adapted_pair(merge_in_eval, dropout=0.0):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 48), nn.GELU(), nn.Linear(48, 24))
    inject_lora(
        model, ['0', '2'],
        rank=4,
        alpha=8,
        dropout=dropout,
        merge_in_eval=merge_in_eval)
    for name, p in model.named_parameters():
        if 'lora_B' in name:  # peft starts B at zero: make the branch count
            nn.init.normal_(p, std=0.5)
    return model


def _branch_calls(model):
    calls = []
    for name, m in model.named_modules():
        if name.endswith('lora_A.default'):
            m.register_forward_hook(lambda *a, n=name: calls.append(n))
    return calls


def test_merged_eval_lora_linear_matches_peft():
    from peft.tuners.lora import Linear as PeftLoRALinear

    ours, peft_model = _adapted_pair(True), _adapted_pair(False)
    assert [type(m) for m in ours.modules()].count(MergedEvalLoRALinear) == 2
    assert not any(
        isinstance(m, MergedEvalLoRALinear) for m in peft_model.modules())
    assert sum(type(m) is PeftLoRALinear for m in peft_model.modules()) == 2
    assert list(ours.state_dict()) == list(peft_model.state_dict())
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    x = torch.randn(2, 100, 32)  # 200 tokens: the merged path is cheaper
    calls = _branch_calls(ours)
    # training: peft's own computation, bit for bit
    ours.train(), peft_model.train()
    torch.testing.assert_close(ours(x), peft_model(x), rtol=0, atol=0)
    assert len(calls) == 2
    # eval: merged weights, the same function up to rounding
    ours.eval(), peft_model.eval()
    calls.clear()
    with torch.no_grad():
        merged, reference = ours(x), peft_model(x)
    assert calls == []  # the LoRA branch did not run
    assert (merged - reference).abs().max() > 0  # a different computation
    torch.testing.assert_close(merged, reference, rtol=1e-5, atol=1e-5)
    # nothing was merged into the parameters
    for k, v in ours.state_dict().items():
        assert torch.equal(v, before[k]), k
    # gradients still reach the LoRA matrices through the merged weight
    ours(x).sum().backward()
    assert ours[0].lora_A['default'].weight.grad.abs().sum() > 0


def test_merged_eval_lora_linear_keeps_the_branch_for_few_tokens():
    ours, peft_model = _adapted_pair(True), _adapted_pair(False)
    ours.eval(), peft_model.eval()
    calls = _branch_calls(ours)
    x = torch.randn(1, 3, 32)  # 3 * (32 + 48) < 32 * 48: branch is cheaper
    torch.testing.assert_close(ours(x), peft_model(x), rtol=0, atol=0)
    assert len(calls) == 2
